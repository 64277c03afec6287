"""One record image -> network-input crops: training augmentation (docs/data-format.md §5) or
the validation crop (docs/protocol.md §3), every random draw from an explicit RandomState."""
from collections import namedtuple
from dataclasses import dataclass

import cv2
import numpy as np

from console import check_range

from .codec import heatmap_cells, heatmap_centres, mirror_cells
from .landmarks import FLIP_ORDER
from .geometry import compose_affine, crop_transform, protocol_crop, warp_points

# The original's geometric draws; `Augmentation.rotation` and `.scale` can narrow them.
MAX_ROTATION = 40        # degrees; drawn as an integer in [-40, 40)
SCALE_SIGMA = 0.2        # crop side = base_scale * clip(1 + 0.2 N(0, 1), 0.8, 1.2)
MAX_TRIES = 3            # new draws while a landmark falls outside the crop
FLIP_PROBABILITY = 0.5

# Box jitter and occluders (docs/data-format.md §5.1): off by default, as in the original.
MAX_SHIFT_SIGMAS = 2     # a crop-centre shift is clipped at 2 sigma per axis
OCCLUDER_SIDES = (0.15, 0.45)   # occluder width and height, as fractions of the crop side


@dataclass(frozen=True)
class Augmentation:
    """The training augmentation's settings; the defaults are the original's.

    `rotation`: rotations are whole degrees in [-rotation, rotation) (0: none);
    `scale`: the crop side's ratio is clip(1 + scale N(0, 1), 1 - scale, 1 + scale).
    Beyond the original's (0: off): `shift`, sigma of the crop-centre shift per axis, as a
    fraction of the crop side (detector boxes sit off the protocol box's centre); `occlusion`,
    probability of one random rectangle of flat colour or noise over the crop; `color`,
    half-range of the random contrast and brightness gains (0.2: x0.8..1.2)."""
    rotation: int = MAX_ROTATION
    scale: float = SCALE_SIGMA
    shift: float = 0.0
    occlusion: float = 0.0
    color: float = 0.0

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg['aug_rotation'], cfg['aug_scale'], cfg['aug_shift'],
                   cfg['aug_occlusion'], cfg['aug_color'])


ORIGINAL_AUGMENTATION = Augmentation()
# The values each augmentation option may take, inclusive (train.py; the BatchNorm pass of
# scripts/average_checkpoints.py repeats a run's settings).
OPTION_RANGES = {'aug_rotation': (0, 180), 'aug_scale': (0, 0.5), 'aug_shift': (0, 0.25),
                 'aug_occlusion': (0, 1), 'aug_color': (0, 0.9)}


def check_augmentation_options(options):
    """ValueError naming the flag (--aug-...) of any value in the dict `options` outside
    OPTION_RANGES; unset (None or absent) options pass."""
    for key, (minimum, maximum) in OPTION_RANGES.items():
        check_range('--' + key.replace('_', '-'), options.get(key), minimum=minimum,
                    maximum=maximum)

# image: (S, S, 3) uint8 crop; points: (68, 2) float64 x/y in crop pixels; cells: (68, 2)
# int32 heatmap cells; centres: (68, 2) float64 positions on the heatmap (the sub-pixel
# target); transform: the 2 x 3 map from record-image to crop pixels.
Crop = namedtuple('Crop', 'image points cells centres transform')


def draw_crop_params(rng, base_scale, max_rotation=MAX_ROTATION, scale_sigma=SCALE_SIGMA):
    """One (rotation in degrees, crop side in record pixels) draw, in the original's order.
    A rotation range of 0 draws no rotation; the scale is drawn whatever its sigma."""
    rotation = rng.randint(-max_rotation, max_rotation) if max_rotation > 0 else 0
    ratio = min(1 + scale_sigma, max(1 - scale_sigma, rng.randn() * scale_sigma + 1))
    return rotation, int(base_scale * ratio)


def draw_shift(rng, sigma, scale):
    """A crop-centre offset in record pixels: N(0, sigma) of the crop side per axis, clipped at
    MAX_SHIFT_SIGMAS sigma. No draw when sigma is 0, so the original's sequence is kept."""
    if sigma <= 0:
        return np.zeros(2)
    limit = MAX_SHIFT_SIGMAS * sigma
    return np.clip(rng.randn(2) * sigma, -limit, limit) * scale


def occlude(image, rng):
    """Paint one random rectangle (sides OCCLUDER_SIDES of the crop side, anywhere on it) with
    a flat random colour or uniform noise, in place."""
    size = image.shape[0]
    width, height = (rng.uniform(*OCCLUDER_SIDES, size=2) * size).astype(int)
    left, top = rng.randint(0, size - width + 1), rng.randint(0, size - height + 1)
    patch = image[top:top + height, left:left + width]
    if rng.rand() < 0.5:
        patch[:] = rng.randint(0, 256, size=3)
    else:
        patch[:] = rng.randint(0, 256, size=patch.shape)


def jitter_color(image, rng, amount):
    """Random contrast (about the crop's mean) and brightness gains in [1 - amount, 1 + amount]."""
    contrast, brightness = rng.uniform(1 - amount, 1 + amount, size=2)
    pixels = image.astype(np.float32)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean * brightness
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def photometric(crop, rng, settings):
    """The crop with the occluder and colour draws of `settings` (Augmentation) applied
    (landmarks unchanged)."""
    image = crop.image
    if settings.occlusion > 0 and rng.rand() < settings.occlusion:
        image = image.copy()
        occlude(image, rng)
    if settings.color > 0:
        image = jitter_color(image, rng, settings.color)
    return crop._replace(image=image)


def points_inside(points, size):
    """Whether every x/y point lies in [0, size) on both axes."""
    return bool(np.all((points >= 0) & (points < size)))


def make_crop(image, points, transform, input_size, label_size):
    """Warp image and points with `transform` onto input_size x input_size."""
    crop = cv2.warpAffine(image, transform, (input_size, input_size), borderValue=0.0)
    crop_points = warp_points(points, transform)
    return Crop(crop, crop_points, heatmap_cells(crop_points, input_size, label_size),
                heatmap_centres(crop_points, input_size, label_size),
                np.asarray(transform, dtype=np.float64))


def flip_crop(crop, label_size):
    """The horizontal mirror of a crop: pixel column x -> size - 1 - x, landmarks renumbered by
    FLIP_ORDER. Cells and centres are mirrored on the heatmap grid (not recomputed from the
    mirrored points) so the target equals the original's flipped heatmaps exactly, and the
    flip test's mirroring of maps undoes it."""
    size = crop.image.shape[1]
    mirror = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]])
    return Crop(np.ascontiguousarray(crop.image[:, ::-1]),
                warp_points(crop.points, mirror)[FLIP_ORDER],
                mirror_cells(crop.cells, label_size)[FLIP_ORDER],
                mirror_cells(crop.centres, label_size)[FLIP_ORDER],
                compose_affine(crop.transform, mirror))


def augment(image, points, rng, input_size=128, label_size=64, base_scale=256, coherent=False,
            settings=ORIGINAL_AUGMENTATION):
    """Training crops of one record image (x/y points in its pixels), or None when a landmark
    left the crop in all MAX_TRIES draws.

    Returns [crop], randomly flipped with p = 0.5, or with `coherent` the pair
    [crop, flip_crop(crop)] and no random flip. `settings` (Augmentation) sets the rotation and
    scale ranges, and can add a crop-centre shift to each try and an occluder and colour gains
    before the flip.
    """
    record_centre = np.array([image.shape[1] // 2, image.shape[0] // 2], dtype=np.float64)
    for _ in range(MAX_TRIES):
        rotation, scale = draw_crop_params(rng, base_scale, settings.rotation, settings.scale)
        centre = record_centre + draw_shift(rng, settings.shift, scale)
        transform = crop_transform(centre, input_size, scale, rotation)
        if points_inside(warp_points(points, transform), input_size):
            break
    else:
        return None
    crop = photometric(make_crop(image, points, transform, input_size, label_size), rng,
                       settings)
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
    return Crop(crop, crop_points, heatmap_cells(crop_points, input_size, label_size),
                heatmap_centres(crop_points, input_size, label_size), transform)
