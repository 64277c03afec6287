"""Cropping a detected face onto the network input, as the original's demo and `--use-essh`
evaluation do: similarity-align the face's five points onto the 384 x 384 template, detect the
face again in the aligned image, then crop a square of 1.2 x its box side onto 128 x 128."""
import cv2
import numpy as np

from data.transforms import (ALIGN_SIZE, ALIGN_TEMPLATE, BOX_MARGIN, box_transform,
                             compose_affine, invert_affine, similarity_transform, warp_points)

CROP_SIZE = 128
# Detection score threshold of the original's alignment demo and `--use-essh` evaluation.
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


def crop_detected_face(image_bgr, face, detector, threshold, require_redetection=False):
    """(128 x 128 BGR crop, M_align, M_crop) for one detected face, or None.

    With five points the image is first aligned and the face detected again there; when that
    second detection finds nothing the aligned detector box is used, or None is returned if
    `require_redetection` (the evaluation protocol counts such an image as a miss). Without
    points the detector box is cropped directly (M_align is the identity).
    """
    if face.points is None:
        m_align, aligned, box = IDENTITY, image_bgr, np.asarray(face.box, dtype=np.float64)
    else:
        # float32 points, as the original estimated this alignment from.
        m_align = similarity_transform(np.asarray(face.points, dtype=np.float32),
                                       ALIGN_TEMPLATE)
        aligned = cv2.warpAffine(image_bgr, m_align, (ALIGN_SIZE, ALIGN_SIZE),
                                 borderValue=0.0)
        again = nearest_to_centre(detector.detect(aligned, threshold=threshold), aligned.shape)
        if again is None and require_redetection:
            return None
        # The detector's own box precision, as the original cropped from it.
        box = np.asarray(again.box) if again is not None else _warped_box(face.box, m_align)
    m_crop = box_transform(box, CROP_SIZE, BOX_MARGIN)
    crop = cv2.warpAffine(aligned, m_crop, (CROP_SIZE, CROP_SIZE), borderValue=0.0)
    return crop, m_align, m_crop


def crop_to_image(points, m_align, m_crop):
    """Map (..., 2) points from the 128 crop back to the original image through the inverse
    of the composed warps (composed first, as the original does)."""
    return warp_points(points, invert_affine(compose_affine(m_align, m_crop)))


def image_to_crop(points, m_align, m_crop):
    return warp_points(points, compose_affine(m_align, m_crop))
