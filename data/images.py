"""Bringing any image a user hands over to the 8-bit BGR the networks and detectors expect."""
import cv2
import numpy as np


def to_bgr8(image):
    """Grey (H, W) / (H, W, 1), BGR, BGRA; uint8, uint16 or float in [0, 1] -> (H, W, 3) uint8."""
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
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
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
