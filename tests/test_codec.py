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


def test_subpixel_targets_decode_exactly_with_dark_and_to_the_floor_with_argmax():
    points = _points(3, count=20, size=120) + 4
    maps = np.zeros((1, 20, 64, 64), np.float32)
    codec.render_heatmaps_at(maps, codec.heatmap_centres(points)[np.newaxis])
    assert np.abs(codec.decode_heatmaps(maps, method='dark')[0] - points).max() < 0.01
    # The parabola fit of a Gaussian is close, not exact.
    assert np.abs(codec.decode_heatmaps(maps, method='subpixel')[0] - points).max() < 0.3
    # Bilinear upsampling of a peak between cells picks the pixel the point floors to.
    assert np.array_equal(codec.decode_heatmaps(maps, method='argmax')[0], np.floor(points))


def test_subpixel_render_on_a_cell_equals_the_cell_target():
    cells = np.array([[[10, 20], [0, 63], [63, 5]]], np.int32)
    cell_maps, centre_maps = np.zeros((2, 1, 3, 64, 64), np.float32)
    codec.render_heatmaps(cell_maps, cells)
    codec.render_heatmaps_at(centre_maps, cells.astype(np.float64))
    assert np.allclose(cell_maps, centre_maps, atol=1e-5)


def test_dark_decodes_logits_and_smoothed_gaussian_maps():
    points = np.array([[50.3, 70.9], [20.6, 33.1]])
    gaussian = np.zeros((1, 2, 64, 64), np.float32)
    codec.render_heatmaps_at(gaussian, codec.heatmap_centres(points)[np.newaxis])
    noisy = gaussian + np.random.RandomState(0).uniform(0, 0.5, gaussian.shape).astype(np.float32)
    # l2 maps are smoothed before the log, so background noise does not move the estimate far.
    assert np.abs(codec.decode_heatmaps(noisy, method='dark')[0] - points).max() < 0.35
    # ce models output logits: a quadratic log-likelihood, decoded as it is.
    cells = np.arange(64, dtype=np.float64)
    centres = codec.heatmap_centres(points)
    logits = -((cells[None, :, None] - centres[:, None, None, 1]) ** 2
               + (cells[None, None, :] - centres[:, None, None, 0]) ** 2) / 2.0 + 3.0
    maps = logits[np.newaxis].astype(np.float32)
    dark = codec.HeatmapCodec(decode_method='dark', loss='ce').decode(maps)[0]
    assert np.abs(dark - points).max() < 0.01
    # Read as l2 maps instead, the same logits would be floored at 1e-10 before the log.
    assert np.abs(codec.HeatmapCodec(decode_method='dark').decode(maps)[0] - points).max() > 0.01


def test_dark_keeps_the_cell_on_the_border_and_on_flat_maps():
    maps = np.zeros((1, 2, 64, 64), np.float32)
    maps[0, 0, 0, 5] = 1.0      # a peak on the top border
    maps[0, 1] = 1.0            # flat: no negative-definite Hessian
    peaks = codec.taylor_peaks(np.log(np.maximum(maps, 1e-10)).astype(np.float64))[0]
    assert np.array_equal(peaks, [[5, 0], [0, 0]])


def test_expectation_decodes_gaussian_targets_and_logits_and_leans_towards_the_mass():
    points = np.array([[50.3, 70.9], [20.6, 33.1]])
    centres = codec.heatmap_centres(points)
    gaussian = np.zeros((1, 2, 64, 64), np.float32)
    codec.render_heatmaps_at(gaussian, centres[np.newaxis])
    # The target's Gaussian is centred on the point, so its mean is the point up to the cut at
    # 7 x 7 cells (l2 maps: the positive part is the weight).
    assert np.abs(codec.decode_heatmaps(gaussian, method='expectation')[0] - points).max() < 0.01
    cells = np.arange(64, dtype=np.float64)
    logits = -((cells[None, :, None] - centres[:, None, None, 1]) ** 2
               + (cells[None, None, :] - centres[:, None, None, 0]) ** 2) / 2.0 + 3.0
    expected = codec.HeatmapCodec(decode_method='expectation', loss='ce').decode(
        logits[np.newaxis].astype(np.float32))[0]
    assert np.abs(expected - points).max() < 1e-3
    # A lopsided map: the peak cell keeps the mode, the mean moves towards the heavier side.
    lopsided = np.full((1, 1, 64, 64), -20.0, np.float32)
    lopsided[0, 0, 30, 30], lopsided[0, 0, 30, 31:34] = 0.0, -0.5
    x_cell = codec.expected_peaks(lopsided, logits=True)[0, 0, 0]
    weights = np.exp([0.0, -0.5, -0.5, -0.5])
    assert x_cell == pytest.approx((weights * [30, 31, 32, 33]).sum() / weights.sum(), abs=1e-6)
    assert codec.decode_heatmaps(lopsided, method='subpixel')[0, 0, 0] < (x_cell + 0.5) * 2


def test_expectation_window_stops_at_the_border_and_flat_l2_maps_keep_the_peak_cell():
    maps = np.zeros((1, 3, 64, 64), np.float32)
    maps[0, 0, 0, :3] = [2.0, 1.0, 1.0]            # a peak in the corner: no cells beyond it
    maps[0, 1] = -1.0                               # nothing positive: the maximum's cell
    maps[0, 2, 10, 10], maps[0, 2, 10, 40] = 1.0, 0.9   # a second mode outside the window
    peaks = codec.expected_peaks(maps)[0]
    np.testing.assert_allclose(peaks[0], [(1.0 * 1 + 1.0 * 2) / 4.0, 0.0])
    np.testing.assert_array_equal(peaks[1], [0, 0])
    np.testing.assert_allclose(peaks[2], [10, 10])
    assert codec.EXPECTATION_RADIUS < 30


def test_peak_variances_measure_an_elongated_map_in_input_pixels():
    """A ce map that is a Gaussian of sigma 2 cells along one axis and 1 across, turned 30
    degrees: its variance is the mean of the two, (4 + 1) / 2 cells squared, whatever the
    turn (up to the window's cut), and the stride squared times that in input pixels."""
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    inverse = np.linalg.inv(rotation.dot(np.diag([2.0 ** 2, 1.0])).dot(rotation.T))
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float64)
    d = np.stack([cols - 30, rows - 20], axis=-1)
    logits = -0.5 * np.einsum('hwa,ab,hwb->hw', d, inverse, d)
    maps = np.stack([logits, np.full((64, 64), -30.0)])[np.newaxis].astype(np.float32)
    maps[0, 1, 5, 5] = 0.0   # one sharp cell: no spread
    variances = codec.peak_variances(maps, logits=True)[0]
    assert variances[0] == pytest.approx(2.5, abs=0.1)
    assert variances[1] == pytest.approx(0.0, abs=1e-6)
    flat = np.zeros((1, 1, 64, 64), np.float32)   # l2, nothing positive: the whole window
    assert codec.peak_variances(flat)[0, 0] == pytest.approx(10.0)   # (11^2 - 1) / 12
    stride_two = codec.HeatmapCodec(loss='ce').variances(maps)[0]
    np.testing.assert_allclose(stride_two, 4 * variances)


def test_codec_target_encoding_is_checked_and_read_from_the_config():
    with pytest.raises(ValueError, match='target encoding'):
        codec.HeatmapCodec(target='exact')
    cfg = {'input_img_size': 128, 'output_label_size': 64, 'gaussian': 1, 'net_loss': 'ce',
           'target_encoding': 'subpixel'}
    built = codec.HeatmapCodec.from_config(cfg)
    assert built.target == 'subpixel' and built.loss == 'ce'
