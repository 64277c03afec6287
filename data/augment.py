"""One record image -> network-input crops: training augmentation (docs/data-format.md §5) or
the validation crop (docs/protocol.md §3), every random draw from an explicit RandomState."""
from collections import namedtuple

import cv2
import numpy as np

from .codec import heatmap_cells, mirror_cells
from .landmarks import FLIP_ORDER
from .geometry import compose_affine, crop_transform, protocol_crop, warp_points

MAX_ROTATION = 40        # degrees; drawn as an integer in [-40, 40)
SCALE_SIGMA = 0.2        # crop side = base_scale * clip(1 + 0.2 N(0, 1), 0.8, 1.2)
MAX_TRIES = 3            # new draws while a landmark falls outside the crop
FLIP_PROBABILITY = 0.5

# image: (S, S, 3) uint8 crop; points: (68, 2) float64 x/y in crop pixels; cells: (68, 2)
# int32 heatmap cells; transform: the 2 x 3 map from record-image to crop pixels.
Crop = namedtuple('Crop', 'image points cells transform')


def draw_crop_params(rng, base_scale):
    """One (rotation in degrees, crop side in record pixels) draw, in the original's order."""
    rotation = rng.randint(-MAX_ROTATION, MAX_ROTATION)
    ratio = min(1 + SCALE_SIGMA, max(1 - SCALE_SIGMA, rng.randn() * SCALE_SIGMA + 1))
    return rotation, int(base_scale * ratio)


def points_inside(points, size):
    """Whether every x/y point lies in [0, size) on both axes."""
    return bool(np.all((points >= 0) & (points < size)))


def make_crop(image, points, transform, input_size, label_size):
    """Warp image and points with `transform` onto input_size x input_size."""
    crop = cv2.warpAffine(image, transform, (input_size, input_size), borderValue=0.0)
    crop_points = warp_points(points, transform)
    return Crop(crop, crop_points, heatmap_cells(crop_points, input_size, label_size),
                np.asarray(transform, dtype=np.float64))


def flip_crop(crop, label_size):
    """The horizontal mirror of a crop: pixel column x -> size - 1 - x, landmarks renumbered by
    FLIP_ORDER. Cells are mirrored on the heatmap grid (not recomputed from the mirrored points)
    so the target equals the original's flipped heatmaps exactly."""
    size = crop.image.shape[1]
    mirror = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]])
    return Crop(np.ascontiguousarray(crop.image[:, ::-1]),
                warp_points(crop.points, mirror)[FLIP_ORDER],
                mirror_cells(crop.cells, label_size)[FLIP_ORDER],
                compose_affine(crop.transform, mirror))


def augment(image, points, rng, input_size=128, label_size=64, base_scale=256, coherent=False):
    """Training crops of one record image (x/y points in its pixels), or None when a landmark
    left the crop in all MAX_TRIES draws.

    Returns [crop], randomly flipped with p = 0.5, or with `coherent` the pair
    [crop, flip_crop(crop)] and no random flip.
    """
    centre = (image.shape[1] // 2, image.shape[0] // 2)
    for _ in range(MAX_TRIES):
        rotation, scale = draw_crop_params(rng, base_scale)
        transform = crop_transform(centre, input_size, scale, rotation)
        if points_inside(warp_points(points, transform), input_size):
            break
    else:
        return None
    crop = make_crop(image, points, transform, input_size, label_size)
    if coherent:
        return [crop, flip_crop(crop, label_size)]
    if rng.rand() < FLIP_PROBABILITY:
        crop = flip_crop(crop, label_size)
    return [crop]


def validation_crop(image, points, top_shift, input_size=128, label_size=64):
    """The evaluation protocol crop of one record image; points are the ground truth's round
    trip into the crop (unrounded)."""
    crop, m_align, m_crop = protocol_crop(image, points, top_shift, input_size)
    transform = compose_affine(m_align, m_crop)
    crop_points = warp_points(np.asarray(points, dtype=np.float32), transform)
    return Crop(crop, crop_points, heatmap_cells(crop_points, input_size, label_size), transform)
