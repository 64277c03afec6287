"""Affine geometry of the crops: the training crop and the evaluation protocol crop (SPEC 3).

All matrices are 2 x 3 affine maps of (x, y) pixel coordinates whose pixel centres sit on
integers, the convention of `cv2.warpAffine`. The arithmetic follows the original toolkit step
by step (float32 points, float64 matrices, the same composition order and integer centre), so
crops and ground-truth round trips match it bit for bit where the image decoder does.
"""
import math
import os

import cv2
import numpy as np

from .landmarks import five_points

# Five-point template (eye centres, nose tip, mouth corners) of a 112-pixel face, *2 + 80:
# the similarity alignment target inside the 384 x 384 aligned image.
ALIGN_TEMPLATE = np.array([[38.2946, 41.6963], [73.5318, 41.5014], [56.0252, 61.7366],
                           [41.5493, 82.3655], [70.7299, 82.2041]], dtype=np.float32) * 2 + 80.0
ALIGN_SIZE = 384

# Pixels the ground-truth box's top edge moves up, per test set, so the forehead is in the crop.
TOP_SHIFT = {'ibug': 36, 'cofw_testset': 45, '300W': 40, 'AFLW2000-3D': 30}
# The original applies the AFLW2000-3D shift to any other data set name.
DEFAULT_TOP_SHIFT = 30
# Side of the protocol crop square relative to the larger side of the shifted box.
BOX_MARGIN = 1.2


def top_shift_for(rec_path):
    """The box top shift for a test `.rec` file, looked up by its base name."""
    name = os.path.splitext(os.path.basename(rec_path))[0]
    return TOP_SHIFT.get(name, DEFAULT_TOP_SHIFT)


def _homogeneous(matrix):
    return np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])


def compose_affine(first, second):
    """The 2 x 3 map that applies `first`, then `second`."""
    return np.dot(_homogeneous(second), _homogeneous(first))[:2]


def invert_affine(matrix):
    """Inverse of a 2 x 3 affine map."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp_points(points, matrix):
    """Apply a 2 x 3 map to (..., 2) x/y points; returns float64."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return np.dot(pts, m[:, :2].T) + m[:, 2]


def similarity_transform(src_pts, dst_pts):
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst, as
    a 2 x 3 float64 matrix (Umeyama 1991).

    Computed in the points' own precision: the original passed float32 points to its
    estimator, and the crops it produced depend on those roundings.
    """
    src = np.asarray(src_pts)
    dst = np.asarray(dst_pts)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError('similarity_transform needs two (K, 2) point sets, got %s and %s'
                         % (src.shape, dst.shape))
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    covariance = np.dot(dst_centred.T, src_centred) / src.shape[0]
    u, singular, vt = np.linalg.svd(covariance)
    rank = np.linalg.matrix_rank(covariance)
    if rank == 0:
        raise ValueError('similarity_transform: the points coincide')
    # Reflection guard: force a proper rotation. With a full-rank covariance the sign comes
    # from its determinant, with rank 1 from the singular vectors (as in Umeyama's paper).
    signs = np.ones(2)
    if np.linalg.det(covariance) < 0:
        signs[1] = -1.0
    rotation_signs = signs.copy()
    if rank == 1:
        rotation_signs[1] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0
    rotation = np.dot(u, np.dot(np.diag(rotation_signs), vt))
    scale = 1.0 / src_centred.var(axis=0).sum() * np.dot(singular, signs)
    matrix = np.zeros((2, 3))
    matrix[:, 2] = dst_mean - scale * np.dot(rotation, src_mean.T)
    matrix[:, :2] = rotation * scale
    return matrix


def crop_transform(centre, output_size, scale, rotation_deg):
    """The training crop: a square of side `scale` around `centre`, rotated by `rotation_deg`
    (positive turns the image content clockwise on screen), onto output_size x output_size.

    Composed as scale, move the centre to the origin, rotate, move to the output centre, in the
    original's order.
    """
    ratio = float(output_size) / scale
    angle = float(rotation_deg) * np.pi / 180.0
    cos, sin = math.cos(angle), math.sin(angle)
    zoom = np.diag([ratio, ratio, 1.0])
    to_origin = np.array([[1.0, 0, -centre[0] * ratio], [0, 1.0, -centre[1] * ratio], [0, 0, 1]])
    turn = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1.0]])
    to_output = np.array([[1.0, 0, output_size / 2], [0, 1.0, output_size / 2], [0, 0, 1]])
    return np.dot(to_output, np.dot(turn, np.dot(to_origin, zoom)))[:2]


def box_transform(box, output_size, margin=BOX_MARGIN):
    """A box (x1, y1, x2, y2) -> the 2 x 3 map of a square of side margin * max(w, h) around
    its integer-truncated centre onto output_size x output_size (the original's box crop)."""
    width = box[2] - box[0]
    height = box[3] - box[1]
    centre_x = int((box[2] + box[0]) / 2)
    centre_y = int((box[3] + box[1]) / 2)
    scale = output_size / (max(width, height) * margin)
    return np.array([[scale, 0, output_size // 2 - centre_x * scale],
                     [0, scale, output_size // 2 - centre_y * scale]])


def protocol_box(aligned_points, top_shift):
    """SPEC 3 step 2's box of five-point aligned points: min/max, top moved up by `top_shift`
    (not past 0)."""
    box = np.concatenate([aligned_points.min(axis=0), aligned_points.max(axis=0)])
    box[1] = 0 if box[1] < top_shift else box[1] - top_shift
    return box


def protocol_transforms(gt_points_xy, top_shift, output_size=128):
    """(M_align, M_crop) of SPEC 3 steps 1-2 for x/y ground-truth points."""
    points = np.asarray(gt_points_xy, dtype=np.float32)
    m_align = similarity_transform(five_points(points).astype(np.float32), ALIGN_TEMPLATE)
    aligned_points = warp_points(points, m_align).astype(np.float32)
    return m_align, box_transform(protocol_box(aligned_points, top_shift), output_size)


def protocol_crop(image_bgr, gt_points_xy, top_shift, output_size=128):
    """SPEC 3 steps 1-2 on one record image.

    Similarity-aligns the image so the ground truth's five points land on ALIGN_TEMPLATE
    (384 x 384 output), then crops the aligned ground truth's box, its top moved up by
    `top_shift` (not past 0), as a square of side 1.2 x max(w, h) around the integer box centre
    onto output_size x output_size. The two warps are applied one after the other, as in the
    original. Returns (crop, M_align, M_crop); record -> crop is
    compose_affine(M_align, M_crop).
    """
    m_align, m_crop = protocol_transforms(gt_points_xy, top_shift, output_size)
    aligned_image = cv2.warpAffine(image_bgr, m_align, (ALIGN_SIZE, ALIGN_SIZE),
                                   borderValue=0.0)
    crop = cv2.warpAffine(aligned_image, m_crop, (output_size, output_size), borderValue=0.0)
    return crop, m_align, m_crop
