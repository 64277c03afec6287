"""Every crop of the toolkit, in one place (docs/protocol.md, docs/data-format.md).

- five-point similarity alignment onto the 384 x 384 template;
- the protocol box: landmark box with its top raised by a per-test-set `top_shift`, cropped
  as a square of 1.2 x its longer side (`protocol_crop`);
- the record layout: the protocol box centred at side `base_scale` in the record image
  (`record_transform`), so the unrotated training crop is the protocol crop;
- the training crop (`crop_transform`), the detector-box crop (`crop_detected_face`) and the
  landmark-box crop (`landmark_box_transform`);
- composition, inversion and application of the 2 x 3 maps.

All matrices are 2 x 3 affine maps of (x, y) pixel coordinates whose pixel centres sit on
integers, the convention of `cv2.warpAffine`. The arithmetic follows the original toolkit step
by step (float32 points, float64 matrices, the same composition order and integer centre), so
crops and ground-truth round trips match it bit for bit where the image decoder does.
"""
import math

import cv2
import numpy as np

from config import BASE

from .landmarks import five_points

# Five-point template (eye centres, nose tip, mouth corners) of a 112-pixel face, *2 + 80:
# the similarity alignment target inside the 384 x 384 aligned image.
ALIGN_TEMPLATE = np.array([[38.2946, 41.6963], [73.5318, 41.5014], [56.0252, 61.7366],
                           [41.5493, 82.3655], [70.7299, 82.2041]], dtype=np.float32) * 2 + 80.0
ALIGN_SIZE = 384

# Pixels the ground-truth box's top edge moves up, per test set, so the forehead is in the crop
# (the data-set presets of the protocol; every crop function takes the shift explicitly).
TOP_SHIFT = {'ibug': 36, 'cofw_testset': 45, '300W': 40, 'AFLW2000-3D': 30}
# The original applies the AFLW2000-3D shift to any other data set name.
DEFAULT_TOP_SHIFT = 30
# Side of the protocol crop square relative to the larger side of the shifted box.
BOX_MARGIN = 1.2


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
    """The protocol box (docs/protocol.md §3.1) of five-point aligned points: min/max, top
    moved up by `top_shift` (not past 0)."""
    box = np.concatenate([aligned_points.min(axis=0), aligned_points.max(axis=0)])
    box[1] = 0 if box[1] < top_shift else box[1] - top_shift
    return box


def protocol_transforms(gt_points_xy, top_shift, output_size=128):
    """(M_align, M_crop) of the protocol crop (docs/protocol.md §2-§3) for x/y ground-truth
    points."""
    points = np.asarray(gt_points_xy, dtype=np.float32)
    m_align = similarity_transform(five_points(points).astype(np.float32), ALIGN_TEMPLATE)
    aligned_points = warp_points(points, m_align).astype(np.float32)
    return m_align, box_transform(protocol_box(aligned_points, top_shift), output_size)


def tilted(m_crop, degrees, output_size):
    """`m_crop` followed by a turn of `degrees` about the output's centre (positive turns
    the content clockwise on screen): crop_transform's turn, at scale 1."""
    centre = (output_size / 2.0, output_size / 2.0)
    return compose_affine(m_crop, crop_transform(centre, output_size, output_size, degrees))


def protocol_crop(image_bgr, gt_points_xy, top_shift, output_size=128, tilt=0):
    """The protocol crop of one record image (docs/protocol.md §2-§3).

    Similarity-aligns the image so the ground truth's five points land on ALIGN_TEMPLATE
    (384 x 384 output), then crops the aligned ground truth's box, its top moved up by
    `top_shift` (not past 0), as a square of side 1.2 x max(w, h) around the integer box centre
    onto output_size x output_size. The two warps are applied one after the other, as in the
    original. `tilt` (degrees, not the original's) turns the crop about its centre, undoing
    the alignment's levelling by that much. Returns (crop, M_align, M_crop); record -> crop
    is compose_affine(M_align, M_crop).
    """
    m_align, m_crop = protocol_transforms(gt_points_xy, top_shift, output_size)
    if tilt:
        m_crop = tilted(m_crop, tilt, output_size)
    aligned_image = cv2.warpAffine(image_bgr, m_align, (ALIGN_SIZE, ALIGN_SIZE),
                                   borderValue=0.0)
    crop = cv2.warpAffine(aligned_image, m_crop, (output_size, output_size), borderValue=0.0)
    return crop, m_align, m_crop


def refinement_crop(image_bgr, points_xy, top_shift, output_size=128):
    """The refinement pass's crop (protocol_crop of predicted landmarks), or None when their
    five points are degenerate (coincide), which leaves the first pass as the answer."""
    try:
        return protocol_crop(image_bgr, points_xy, top_shift, output_size)
    except ValueError:
        return None


# What the refinement pass answers (FaceAligner's `refine`, evaluate.py --refine): 'none' the
# detection crop's landmarks; 'second' the second pass's; 'mean' the mean of both passes when
# the detection crop was five-point aligned (MTCNN, ESSH), else the second pass's.
REFINE_MODES = ('none', 'second', 'mean')


def refine_mode(value):
    """`value` checked against REFINE_MODES; True stands for 'mean' and False for 'none'."""
    mode = ('mean' if value else 'none') if isinstance(value, bool) else value
    if mode not in REFINE_MODES:
        raise ValueError('unknown refinement %r; valid: %s' % (value, ', '.join(REFINE_MODES)))
    return mode


def refinement_answer(mode, first_points, second_points, first_m_align):
    """The landmarks the refinement pass settles on (REFINE_MODES). `first_m_align` is the
    detection crop's alignment, IDENTITY for a box-only detector (crop_detected_face).

    Why 'mean' averages: the two crops differ (detector box against the protocol box of the
    predicted points), so their errors partly cancel. On the 300-W validation faces with MTCNN
    and the shipped model (version 7), the mean scored 4.76% NME against the second pass's 4.86%
    (4.62% against 4.67% with the flip test). An unaligned box crop is much worse than the
    second pass (Haar: 6.34% against 5.79%), and averaging it in hurts (5.86%), so it is left
    out."""
    if mode == 'none':
        return first_points
    if mode == 'mean' and not np.array_equal(first_m_align, IDENTITY):
        return (np.asarray(first_points) + np.asarray(second_points)) / 2
    return second_points


RECORD_SIZE = BASE['record_img_size']
BASE_SCALE = BASE['base_scale']


def record_transform(points_xy, record_size=RECORD_SIZE, base_scale=BASE_SCALE,
                     top_shift=DEFAULT_TOP_SHIFT):
    """2 x 3 map of a source image onto its record image: the five points similarity-aligned,
    then the protocol box (top raised by `top_shift`) centred with its crop side scaled to
    `base_scale`. The training crop at scale 1 and no rotation is then the protocol crop."""
    m_align, m_box = protocol_transforms(points_xy, top_shift, base_scale)
    m_box[:, 2] += (record_size - base_scale) / 2.0
    return compose_affine(m_align, m_box)


def make_record(image_bgr, points_xy, record_size=RECORD_SIZE, base_scale=BASE_SCALE,
                top_shift=DEFAULT_TOP_SHIFT):
    """Source image + x/y points -> (record image record_size^2 BGR, points in the record)."""
    matrix = record_transform(points_xy, record_size, base_scale, top_shift)
    record = cv2.warpAffine(image_bgr, matrix, (record_size, record_size),
                            flags=cv2.INTER_LINEAR, borderValue=0)
    return record, warp_points(points_xy, matrix)


# The detection path of the protocol (docs/protocol.md): detection score threshold of the
# original's alignment demo and `--use-essh` evaluation.
DETECTION_THRESHOLD = 0.4
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def nearest_to_centre(faces, image_shape):
    """The face whose box centre is closest to the image centre (the original's choice of
    'the' face in a test record), or None when there are no faces."""
    if not faces:
        return None
    centre = np.array([image_shape[1], image_shape[0]], dtype=np.float64) / 2
    box_centres = np.array([(f.box[:2] + f.box[2:4]) / 2 for f in faces], dtype=np.float64)
    return faces[int(np.argmin(((box_centres - centre) ** 2).sum(axis=1)))]


def _warped_box(box, matrix):
    """Axis-aligned bounds of a box's corners after an affine map."""
    x1, y1, x2, y2 = box[:4]
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], dtype=np.float64)
    mapped = corners @ np.asarray(matrix, dtype=np.float64).T
    return np.concatenate([mapped.min(axis=0), mapped.max(axis=0)])


def crop_detected_face(image_bgr, face, detector, threshold, output_size=128,
                       require_redetection=False, choose_redetection=None):
    """(output_size^2 BGR crop, M_align, M_crop) for one detected face, or None.

    As the original's demo and `--use-essh` evaluation: with five points the image is first
    aligned onto the 384 template and the face detected again there; when that second
    detection finds nothing the aligned detector box is used, or None is returned if
    `require_redetection` (the evaluation protocol counts such an image as a miss). Without
    points the detector box is cropped directly (M_align is the identity). The crop is a
    square of 1.2 x the box's longer side.

    `choose_redetection(faces, mapped_box)` picks the second detection's face from its
    faces and the first box mapped into the aligned image, or None to crop the mapped box;
    by default the face nearest the aligned image's centre, as the original did.
    """
    if face.points is None:
        m_align, aligned, box = IDENTITY, image_bgr, np.asarray(face.box, dtype=np.float64)
    else:
        # float32 points, as the original estimated this alignment from.
        m_align = similarity_transform(np.asarray(face.points, dtype=np.float32),
                                       ALIGN_TEMPLATE)
        aligned = cv2.warpAffine(image_bgr, m_align, (ALIGN_SIZE, ALIGN_SIZE),
                                 borderValue=0.0)
        found = detector.detect(aligned, threshold=threshold)
        mapped = _warped_box(face.box, m_align)
        again = (nearest_to_centre(found, aligned.shape) if choose_redetection is None
                 else choose_redetection(found, mapped))
        if again is None and require_redetection:
            return None
        # The detector's own box precision, as the original cropped from it.
        box = np.asarray(again.box) if again is not None else mapped
    m_crop = box_transform(box, output_size, BOX_MARGIN)
    crop = cv2.warpAffine(aligned, m_crop, (output_size, output_size), borderValue=0.0)
    return crop, m_align, m_crop


# The 300-W protocol's 40-pixel top shift over the median height (160.4 px) of the ground-truth
# box of the 1811 300-W training faces after the five-point alignment into 384 x 384: the top
# shift as a fraction of the box height, for crops from a bare landmark box.
LANDMARK_BOX_TOP_SHIFT = TOP_SHIFT['300W'] / 160.4


def landmark_box_transform(box, output_size=128):
    """The protocol crop expressed on a landmark box (x1, y1, x2, y2) without alignment: its
    top raised by LANDMARK_BOX_TOP_SHIFT of its height, then the 1.2 x max(w, h) square."""
    box = np.array(box, dtype=np.float64)
    box[1] -= LANDMARK_BOX_TOP_SHIFT * (box[3] - box[1])
    return box_transform(box, output_size)


def crop_to_image(points, m_align, m_crop):
    """Map (..., 2) points from the crop back to the original image through the inverse
    of the composed warps (composed first, as the original does)."""
    return warp_points(points, invert_affine(compose_affine(m_align, m_crop)))


def image_to_crop(points, m_align, m_crop):
    return warp_points(points, compose_affine(m_align, m_crop))
