import numpy as np
import pytest

from data import augment, codec, geometry
from data.landmarks import FLIP_ORDER, five_points


def _similarity(scale, degrees, shift):
    angle = np.deg2rad(degrees)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                     [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])


def _face(seed=0):
    """68 x/y points in a 384 record: a jittered ring around the centre whose five alignment
    points are exactly the template's."""
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([192 + 70 * np.cos(angle), 192 + 85 * np.sin(angle)], axis=1)
    ring += np.random.RandomState(seed).uniform(-3, 3, ring.shape)
    template = geometry.ALIGN_TEMPLATE.astype(np.float64)
    ring[[36, 39]] = template[0] + [[-6, 1], [6, -1]]
    ring[[42, 45]] = template[1] + [[-6, -1], [6, 1]]
    ring[[30, 48, 54]] = template[2:]
    return ring


def test_similarity_transform_recovers_a_known_map_and_is_least_squares():
    src = np.random.RandomState(0).uniform(0, 300, (5, 2))
    truth = _similarity(1.7, 23.0, (12.0, -40.0))
    assert np.allclose(geometry.similarity_transform(src, geometry.warp_points(src, truth)),
                       truth, atol=1e-9)
    dst = geometry.warp_points(src, truth) + np.random.RandomState(1).normal(0, 2, (5, 2))
    # Linear least squares over (a, b, tx, ty) with x' = a x - b y + tx, y' = b x + a y + ty.
    rows = np.concatenate([np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], 1),
                           np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], 1)])
    a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    assert np.allclose(geometry.similarity_transform(src, dst),
                       [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_affine_helpers():
    first, second = _similarity(2.0, 10, (3, 4)), _similarity(0.5, -30, (-7, 1))
    points = np.random.RandomState(2).rand(10, 2) * 100
    composed = geometry.compose_affine(first, second)
    assert np.allclose(geometry.warp_points(points, composed),
                       geometry.warp_points(geometry.warp_points(points, first), second))
    assert np.allclose(geometry.warp_points(geometry.warp_points(points, composed),
                                              geometry.invert_affine(composed)), points)


def test_template():
    assert geometry.ALIGN_TEMPLATE.dtype == np.float32
    assert np.allclose(geometry.ALIGN_TEMPLATE[0], [38.2946 * 2 + 80, 41.6963 * 2 + 80])


def test_training_crop_geometry():
    matrix = geometry.crop_transform((192, 192), 128, 256, 0)
    assert np.allclose(matrix, [[0.5, 0, -32], [0, 0.5, -32]])
    # Positive rotation: a point right of the centre goes below it (clockwise on screen).
    turned = geometry.warp_points([[292.0, 192.0]], geometry.crop_transform((192, 192), 128,
                                                                                 256, 90))
    assert np.allclose(turned, [[64, 114]])


def test_box_transform_uses_the_integer_centre():
    box = np.array([10.5, 20.25, 111.5, 181.75], dtype=np.float32)
    scale = 128 / (161.5 * 1.2)
    expected = [[scale, 0, 64 - 61 * scale], [0, scale, 64 - 101 * scale]]
    assert np.allclose(geometry.box_transform(box, 128), expected, rtol=1e-12, atol=1e-12)


def test_protocol_crop_aligns_five_points_then_crops_the_shifted_box():
    template_face = _face()
    placement = _similarity(1.3, 17.0, (-30.0, 25.0))
    points = geometry.warp_points(template_face, placement).astype(np.float32)
    image = np.random.RandomState(3).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    crop, m_align, m_crop = geometry.protocol_crop(image, points, top_shift=36)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    # The face's five points are a similarity of the template: alignment undoes it.
    aligned = geometry.warp_points(points, m_align)
    assert np.allclose(five_points(aligned), geometry.ALIGN_TEMPLATE, atol=1e-3)
    assert np.allclose(aligned, template_face, atol=1e-3)
    box = np.concatenate([aligned.min(0), aligned.max(0)])
    box[1] -= 36
    side = 1.2 * max(box[2] - box[0], box[3] - box[1])
    assert m_crop[0, 0] == pytest.approx(128 / side, rel=1e-6)
    in_crop = geometry.warp_points(points, geometry.compose_affine(m_align, m_crop))
    assert augment.points_inside(in_crop, 128)


def test_augmentation_ranges_over_1000_draws():
    rng = np.random.RandomState(0)
    draws = np.array([augment.draw_crop_params(rng, 256) for _ in range(1000)])
    rotations, scales = draws[:, 0], draws[:, 1]
    assert rotations.min() == -40 and rotations.max() == 39
    assert np.all(rotations == np.round(rotations))
    assert scales.min() == int(256 * 0.8) and scales.max() == int(256 * 1.2)
    # clip(1 + 0.2 N): about 16 % of the draws are clipped on each side.
    assert 0.1 < np.mean(scales == 204) < 0.22 and 0.1 < np.mean(scales == 307) < 0.22


def test_augmented_crops_keep_the_landmarks_and_flip_half_the_time():
    image = np.random.RandomState(4).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    points = _face(1)
    rng = np.random.RandomState(5)
    flips = 0
    for _ in range(300):
        crops = augment.augment(image, points, rng)
        assert len(crops) == 1 and augment.points_inside(crops[0].points, 128)
        assert np.array_equal(crops[0].cells, np.clip(crops[0].cells, 0, 63))
        # The crop's transform tells whether it was mirrored (negative determinant).
        flips += np.linalg.det(crops[0].transform[:, :2]) < 0
    assert 0.4 < flips / 300 < 0.6


def test_flipped_sample_is_the_mirror_of_the_unflipped_sample():
    image = np.random.RandomState(6).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    crop, flipped = augment.augment(image, _face(2), np.random.RandomState(7), coherent=True)
    assert np.array_equal(flipped.image, crop.image[:, ::-1])
    assert np.allclose(flipped.points[:, 0], 127 - crop.points[FLIP_ORDER, 0])
    plain = np.zeros((1, 68, 64, 64), np.float32)
    mirrored = np.zeros_like(plain)
    codec.render_heatmaps(plain, crop.cells[None])
    codec.render_heatmaps(mirrored, flipped.cells[None])
    assert np.array_equal(mirrored[0], plain[0][:, :, ::-1][FLIP_ORDER])


def test_augmentation_gives_up_when_landmarks_cannot_fit():
    image = np.zeros((384, 384, 3), np.uint8)
    spread = _face() * 2.5 - 288      # a face far larger than any crop
    assert augment.augment(image, spread, np.random.RandomState(0)) is None


def test_extra_augmentation_off_keeps_the_original_draws():
    image = np.random.RandomState(8).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    plain = augment.augment(image, _face(3), np.random.RandomState(9))
    explicit = augment.augment(image, _face(3), np.random.RandomState(9),
                               settings=augment.Augmentation(40, 0.2, 0.0, 0.0, 0.0))
    assert np.array_equal(plain[0].image, explicit[0].image)
    assert np.array_equal(plain[0].transform, explicit[0].transform)


def test_narrowed_rotation_and_scale_ranges_over_1000_draws():
    rng = np.random.RandomState(0)
    draws = np.array([augment.draw_crop_params(rng, 256, 10, 0.05) for _ in range(1000)])
    rotations, scales = draws[:, 0], draws[:, 1]
    assert rotations.min() == -10 and rotations.max() == 9
    assert scales.min() == int(256 * 0.95) and scales.max() == int(256 * 1.05)
    assert 0.1 < np.mean(scales == int(256 * 0.95)) < 0.22


def test_no_rotation_and_no_scale_give_the_protocol_geometry():
    # Records hold the protocol crop square at 256 px around their centre
    # (docs/data-format.md §3), so without rotation, scale or shift every training crop is
    # that square scaled onto the input: an axis-aligned halving about the centre.
    image = np.random.RandomState(8).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    rng = np.random.RandomState(12)
    for _ in range(20):
        crop = augment.augment(image, _face(3), rng, coherent=True,
                               settings=augment.Augmentation(rotation=0, scale=0.0))[0]
        assert np.allclose(crop.transform, [[0.5, 0, -32], [0, 0.5, -32]])


def test_box_jitter_shifts_the_crop_centre_by_the_configured_sigma():
    image = np.zeros((384, 384, 3), np.uint8)
    points = _face(0) * 0.5 + 96    # a small face, so no draw is refused
    rng = np.random.RandomState(10)
    settings = augment.Augmentation(shift=0.05)
    shifts = []
    for _ in range(400):
        crop = augment.augment(image, points, rng, settings=settings)[0]
        # Where the record centre lands in the crop, relative to the crop centre and side.
        centre = geometry.warp_points(np.array([[192.0, 192.0]]), crop.transform)[0]
        shifts.append((centre - 64) / 128)
    shifts = np.abs(np.array(shifts))
    # The record centre moves by the (rotated) shift: sigma 0.05 per axis, clipped at 0.1
    # (at most 0.1 * sqrt(2) after a rotation).
    assert 0.03 < np.sqrt(np.mean(shifts ** 2)) < 0.07
    assert shifts.max() <= 0.1 * np.sqrt(2) + 1e-6


def test_occluder_and_colour_change_pixels_not_landmarks():
    image = np.full((384, 384, 3), 128, np.uint8)
    points = _face(1)
    # Coherent pairs have no random flip, so both calls crop alike.
    plain = augment.augment(image, points, np.random.RandomState(11), coherent=True)[0]
    occluded = augment.augment(image, points, np.random.RandomState(11), coherent=True,
                               settings=augment.Augmentation(occlusion=1.0))[0]
    assert np.array_equal(plain.points, occluded.points)
    changed = np.any(occluded.image != plain.image, axis=2).mean()
    assert 0.15 ** 2 * 0.9 <= changed <= 0.45 ** 2 + 0.01
    grey = np.full((128, 128, 3), 100, np.uint8)
    grey[:64] = 50
    jittered = augment.jitter_color(grey, np.random.RandomState(0), 0.3)
    assert jittered.dtype == np.uint8 and not np.array_equal(jittered, grey)
    # Contrast scales the step between the halves by at most 1.3.
    step = float(jittered[64:].mean()) - float(jittered[:64].mean())
    assert 50 * 0.7 - 1 <= step <= 50 * 1.3 + 1


def test_subpixel_target_centres_flip_with_the_heatmaps():
    image = np.random.RandomState(12).randint(0, 255, (384, 384, 3)).astype(np.uint8)
    crop, flipped = augment.augment(image, _face(2), np.random.RandomState(13), coherent=True)
    target = codec.HeatmapCodec(target='subpixel')
    plain = np.zeros((1, 68, 64, 64), np.float32)
    mirrored = np.zeros_like(plain)
    target.render(plain, crop.cells[None], crop.centres[None])
    target.render(mirrored, flipped.cells[None], flipped.centres[None])
    assert np.allclose(mirrored[0], plain[0][:, :, ::-1][FLIP_ORDER], atol=1e-5)
    # The exact positions decode back to the points (the flipped crop's up to the original's
    # grid mirror, which puts it one input pixel off the mirrored point).
    decoded = codec.decode_heatmaps(plain, method='dark')[0]
    assert np.abs(decoded - crop.points).max() < 0.05
