"""Facts about the iBUG 68-point landmark scheme, shared by data, networks and evaluation."""
import numpy as np

NUM_LANDMARKS = 68

# Index of each point's mirror image under a horizontal flip.
FLIP_ORDER = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] +
    list(range(35, 30, -1)) + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] +
    list(range(54, 47, -1)) + list(range(59, 54, -1)) + list(range(64, 59, -1)) +
    [67, 66, 65], dtype=np.int64)

LEFT_EYE_CORNERS = (36, 39)
RIGHT_EYE_CORNERS = (42, 45)

# Face regions of the scheme (first, last index inclusive), for errors by region.
REGIONS = {'jaw': (0, 16), 'brows': (17, 26), 'nose': (27, 35), 'eyes': (36, 47),
           'mouth': (48, 67)}

# Polylines drawn on result images: (first, last index inclusive, closed).
CONTOURS = [(0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False),
            (31, 35, False), (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True)]


def eye_centres(points):
    """Return the (left, right) eye centres of an (..., 68, 2) array of points."""
    pts = np.asarray(points, dtype=np.float64)
    left = pts[..., LEFT_EYE_CORNERS, :].mean(axis=-2)
    right = pts[..., RIGHT_EYE_CORNERS, :].mean(axis=-2)
    return left, right


def five_points(points):
    """The 5 alignment points (eye centres, nose tip, mouth corners) of 68 points, as (5, 2)."""
    pts = np.asarray(points, dtype=np.float64)
    left, right = eye_centres(pts)
    return np.stack([left, right, pts[30], pts[48], pts[54]])
