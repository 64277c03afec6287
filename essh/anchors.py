"""ESSH anchors: the reference windows per stride and their planes over a feature map.

Boxes use the original's pixel-inclusive convention: a box (x1, y1, x2, y2) is
`x2 - x1 + 1` pixels wide, and its centre is `x1 + 0.5 * (width - 1)`.
"""
import numpy as np

from ._kernels import ext

BASE_SIZE = 16
# Output order of the network (stride 32 first) and the two anchor scales of each stride.
STRIDES = (32, 16, 8)
ANCHOR_SCALES = {32: (32, 16), 16: (8, 4), 8: (2, 1)}
ANCHOR_RATIOS = (1.0,)


def _box_from_centre(cx, cy, widths, heights):
    return np.stack([cx - 0.5 * (widths - 1), cy - 0.5 * (heights - 1),
                     cx + 0.5 * (widths - 1), cy + 0.5 * (heights - 1)], axis=1)


def generate_anchors(base_size=BASE_SIZE, ratios=ANCHOR_RATIOS, scales=(32, 16)):
    """Reference anchors (len(ratios) * len(scales), 4) centred on (0, 0, base-1, base-1).

    For every aspect ratio (height / width) the base window is reshaped at constant area with
    rounded sides, then every scale multiplies both sides; rows are ratio-major, scale-minor.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    centre = 0.5 * (base_size - 1)
    widths = np.round(np.sqrt(base_size * base_size / ratios))
    heights = np.round(widths * ratios)
    return np.concatenate([
        _box_from_centre(centre, centre, w * scales, h * scales)
        for w, h in zip(widths, heights)], axis=0)


def stride_anchors(strides=STRIDES):
    """{stride: reference anchors (A, 4) float32} for the ESSH configuration."""
    return {s: generate_anchors(BASE_SIZE, ANCHOR_RATIOS, ANCHOR_SCALES[s]).astype(np.float32)
            for s in strides}


def anchor_plane_numpy(height, width, stride, base_anchors):
    """Every reference anchor shifted to every feature-map cell: (height, width, A, 4) float32.

    Cell (row, col) shifts x by col * stride and y by row * stride.
    """
    base = np.asarray(base_anchors, dtype=np.float32)
    shift_x = np.arange(width, dtype=np.float32) * stride
    shift_y = np.arange(height, dtype=np.float32) * stride
    shifts = np.zeros((height, width, 1, 4), dtype=np.float32)
    shifts[..., 0, 0::2] = shift_x[None, :, None]
    shifts[..., 0, 1::2] = shift_y[:, None, None]
    return shifts + base[None, None, :, :]


def anchor_plane(height, width, stride, base_anchors):
    """`anchor_plane_numpy`, computed by the Cython kernel when it is built."""
    if ext is None:
        return anchor_plane_numpy(height, width, stride, base_anchors)
    return ext.anchor_plane(int(height), int(width), int(stride),
                            np.ascontiguousarray(base_anchors, dtype=np.float32))
