"""The Cython detector kernels (cxx/essh_kernels.pyx) against their numpy references."""
import numpy as np
import pytest

from essh import anchors, boxes
from essh._kernels import ext

needs_ext = pytest.mark.skipif(ext is None, reason='cxx.essh_kernels is not built (make)')


def random_boxes(rng, count, extent=1000.0, max_side=120.0):
    corner = rng.uniform(0, extent, size=(count, 2))
    sides = rng.uniform(1.0, max_side, size=(count, 2))
    return np.concatenate([corner, corner + sides], axis=1)


def test_nms_numpy_keeps_best_of_overlapping_and_all_separate():
    dets = np.array([[0, 0, 99, 99], [5, 5, 104, 104], [200, 200, 299, 299], [0, 0, 99, 99]],
                    dtype=np.float64)
    scores = np.array([0.5, 0.9, 0.7, 0.5])
    # IoU(0, 1) = 9025 / 10975 = 0.82 > 0.3; box 3 duplicates box 0, so both go with box 1.
    assert boxes.nms_numpy(dets, scores, 0.3).tolist() == [1, 2]
    # At a threshold above their IoU nothing but the exact duplicate is dropped.
    assert boxes.nms_numpy(dets, scores, 0.9).tolist() == [1, 2, 0]


@needs_ext
def test_cython_nms_equals_numpy_on_10000_random_boxes():
    rng = np.random.default_rng(0)
    dets = random_boxes(rng, 10000).astype(np.float32)
    scores = rng.uniform(size=10000)
    for threshold in (0.3, 0.7):
        expected = boxes.nms_numpy(dets, scores, threshold)
        got = ext.nms(dets.astype(np.float64), boxes.score_order(scores), threshold)
        assert 100 < len(expected) < 10000
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(boxes.nms(dets, scores, threshold), expected)


@needs_ext
def test_cython_box_overlaps_equals_numpy():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 300, extent=300.0), random_boxes(rng, 200, extent=300.0)
    expected = boxes.box_overlaps_numpy(a, b)
    assert (expected > 0).mean() > 0.05
    np.testing.assert_allclose(ext.box_overlaps(a, b), expected, rtol=0, atol=1e-12)


def test_box_overlaps_hand_values():
    a = np.array([[0, 0, 9, 9]], dtype=np.float64)
    b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [10, 10, 19, 19]], dtype=np.float64)
    # 10x10 boxes (inclusive pixels); the second overlaps 5x10 = 50 of a 150 union.
    np.testing.assert_allclose(boxes.box_overlaps(a, b), [[1.0, 50.0 / 150.0, 0.0]])


@needs_ext
def test_cython_anchor_plane_equals_numpy():
    base = anchors.stride_anchors()[16]
    np.testing.assert_array_equal(ext.anchor_plane(7, 11, 16, base),
                                  anchors.anchor_plane_numpy(7, 11, 16, base))
