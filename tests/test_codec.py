import cv2
import numpy as np
import pytest

from data import codec
from data.landmarks import FLIP_ORDER


def _points(seed, count=68, size=128):
    return np.random.RandomState(seed).uniform(0, size - 1e-3, (count, 2))


def test_target_is_a_peak_20_gaussian_in_a_7x7_window():
    heatmaps = codec.encode_heatmaps(np.array([[40.7, 21.2], [0.4, 127.9]]))
    assert heatmaps.shape == (2, 64, 64) and heatmaps.dtype == np.float32
    assert heatmaps[0, 10, 20] == 20.0 and np.count_nonzero(heatmaps[0]) == 49
    assert heatmaps[0, 10, 23] == pytest.approx(20 * np.exp(-4.5))
    assert heatmaps[0, 10, 24] == 0 and heatmaps[0, 14, 20] == 0
    # Clipped at the corner: only the 4 x 4 quarter of the window is inside.
    assert heatmaps[1, 63, 0] == 20.0 and np.count_nonzero(heatmaps[1]) == 16


def test_round_trip_encode_decode():
    points = _points(0)
    heatmaps = codec.encode_heatmaps(points)[np.newaxis]
    subpixel = codec.decode_heatmaps(heatmaps, method='subpixel')[0]
    assert np.all(np.abs(subpixel - points) <= 1.0)
    argmax = codec.decode_heatmaps(heatmaps, method='argmax')[0]
    # A cell c covers pixels [2c, 2c + 2); the original decoding lands on one of the two
    # pixels of the cell (the bilinear resize ties them up to rounding).
    offset = argmax - 2 * np.floor(points / 2)
    assert np.all((offset == 0) | (offset == 1))


def test_argmax_is_the_original_per_map_resize_and_argmax():
    maps = np.random.RandomState(1).rand(2, 68, 64, 64).astype(np.float32)
    expected = np.zeros((2, 68, 2))
    for n in range(2):
        for k in range(68):
            resized = cv2.resize(maps[n, k], (128, 128))
            row, col = np.unravel_index(np.argmax(resized), resized.shape)
            expected[n, k] = (col, row)
    assert np.array_equal(codec.decode_heatmaps(maps), expected)


def test_subpixel_finds_a_continuous_peak():
    grid = np.arange(64.0)
    centre = np.array([20.3, 40.7])
    blob = np.exp(-((grid[None, :] - centre[0]) ** 2 + (grid[:, None] - centre[1]) ** 2) / 8)
    peaks = codec.refine_peaks_numpy(blob[None, None].astype(np.float32))[0, 0]
    assert np.all(np.abs(peaks - centre) < 0.1)
    assert np.all(np.abs(np.round(centre) - centre) > 0.25)   # integer argmax alone is worse


def test_flipped_cells_render_the_flipped_heatmaps():
    cells = codec.heatmap_cells(_points(2))
    plain = np.zeros((1, 68, 64, 64), np.float32)
    codec.render_heatmaps(plain, cells[np.newaxis])
    flipped = np.zeros_like(plain)
    codec.render_heatmaps(flipped, codec.mirror_cells(cells)[FLIP_ORDER][np.newaxis])
    assert np.array_equal(flipped[0], plain[0][:, :, ::-1][FLIP_ORDER])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='decode method'):
        codec.decode_heatmaps(np.zeros((1, 68, 64, 64)), method='mean')
    with pytest.raises(ValueError, match='N, K, h, w'):
        codec.decode_heatmaps(np.zeros((68, 64, 64)))
    with pytest.raises(ValueError, match='sigma'):
        codec.gaussian_kernel(0)


def test_cython_equals_numpy():
    kernels = pytest.importorskip('cxx.heatmap')
    rng = np.random.RandomState(3)
    # Cells inside, on and beyond the borders.
    cells = rng.randint(-5, 70, (4, 68, 2)).astype(np.int32)
    for sigma in (1, 2):
        kernel = codec.gaussian_kernel(sigma)
        compiled = np.zeros((4, 68, 64, 64), np.float32)
        reference = np.zeros_like(compiled)
        kernels.render_gaussians(compiled, cells, kernel)
        codec.render_heatmaps_numpy(reference, cells, kernel)
        assert np.array_equal(compiled, reference)
    maps = rng.rand(3, 68, 64, 64).astype(np.float32)
    maps[0, 0] = 0                                   # ties: the first maximum wins
    maps[1, 1, 0, 5] = maps[1, 2, 63, 63] = 2.0      # peaks on the border
    assert np.allclose(kernels.refine_peaks(maps), codec.refine_peaks_numpy(maps),
                       rtol=0, atol=1e-9)


def test_numpy_fallback_gives_the_same_results(monkeypatch):
    points = _points(4)
    maps = np.random.RandomState(5).rand(2, 68, 64, 64).astype(np.float32)
    built = codec.encode_heatmaps(points), codec.decode_heatmaps(maps, method='subpixel')
    monkeypatch.setattr(codec, '_kernels', None)
    fallback = codec.encode_heatmaps(points), codec.decode_heatmaps(maps, method='subpixel')
    assert np.array_equal(built[0], fallback[0])
    assert np.allclose(built[1], fallback[1], rtol=0, atol=1e-9)
