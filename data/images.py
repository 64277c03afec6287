"""Bringing any image a user hands over to the 8-bit BGR the networks and detectors expect."""
import cv2
import numpy as np


def _float_to_uint8(image):
    """Float pixels in 0..1, or in 0..255 (the maximum above 1), -> uint8; refuses NaN,
    infinities, negative values and values above 255 rather than guessing."""
    if not np.isfinite(image).all():
        raise ValueError('float image has NaN or infinite pixels')
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 255.0:
        raise ValueError('float image pixels must be in 0..1 or 0..255, got %.4g..%.4g'
                         % (low, high))
    scale = 255.0 if high <= 1.0 else 1.0
    return (image.astype(np.float64) * scale + 0.5).astype(np.uint8)


def to_bgr8(image):
    """Grey (H, W) / (H, W, 1), BGR, BGRA; uint8, uint16, or float in 0..1 or 0..255 (read as
    0..255 when the maximum is above 1) -> (H, W, 3) uint8."""
    if image is None:
        raise ValueError('image is None (an unreadable file? cv2.imread returns None for a '
                         'missing or unreadable file)')
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError('image must be grey, BGR or BGRA, got shape %s' % (image.shape,))
    if image.size == 0:
        raise ValueError('image is empty (shape %s)' % (image.shape,))
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype.kind == 'f':
        image = _float_to_uint8(image)
    elif image.dtype != np.uint8:
        raise ValueError('image pixels must be uint8, uint16 or float, got %s' % image.dtype)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def read_image(path):
    """Read an image file keeping its bit depth and alpha, then convert with `to_bgr8`."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError('%s: not a readable image' % path)
    try:
        return to_bgr8(image)
    except ValueError as exc:
        raise ValueError('%s: %s' % (path, exc)) from None
