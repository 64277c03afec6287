"""The heatmap codec: training targets and their decoding back to points
(docs/data-format.md, docs/protocol.md).

A point (x, y) in the network input (128 x 128) becomes, on a 64 x 64 map, the integer cell
int(pt * 64 / 128) with an unnormalised Gaussian (sigma 1, peak 20) in the 7 x 7 window
around it. `HeatmapCodec` binds these functions to one network geometry, built from the config
(or read off a model), so encoder and decoder cannot disagree on the sizes. The compiled
kernels in cxx/heatmap.pyx are used when built; the numpy versions here are their reference
and the fallback.
"""
from dataclasses import dataclass

import cv2
import numpy as np

try:
    from cxx import heatmap as _kernels
except ImportError:
    _kernels = None

DECODE_METHODS = ('argmax', 'subpixel', 'dark', 'expectation')
# Half side, in cells, of the window around each peak that 'expectation' averages over. Chosen
# on the 300-W validation faces with the shipped (ce) model among 1, 2, 3, 5 and the whole map:
# 1 and 2 cut the predicted distribution short (worse than 'subpixel'); 3, 5 and the whole map
# were within 0.01 of each other. 5 keeps a second mode elsewhere on the map out.
EXPECTATION_RADIUS = 5
# The training losses whose maps the codec reads: 'l2' maps regress the target itself, 'ce'
# maps are logits whose spatial softmax is fitted to the target (symbols/heatmap_net.py).
HEATMAP_LOSSES = ('l2', 'ce')
# Where a training target's Gaussian sits: on the truncated cell (the original's) or on the
# point's exact position on the map (docs/data-format.md §6).
TARGET_ENCODINGS = ('cell', 'subpixel')


def gaussian_kernel(sigma=1, peak=20.0):
    """The (6 sigma + 1)^2 float32 window drawn around each point, peak at its centre."""
    if int(sigma) != sigma or sigma < 1:
        raise ValueError('heatmap sigma must be a positive integer, got %r' % (sigma,))
    radius = 3 * int(sigma)
    axis = np.arange(0, 2 * radius + 1, 1, float)
    squared = (axis - radius) ** 2 + ((axis - radius) ** 2)[:, np.newaxis]
    return (np.exp(-squared / (2 * sigma ** 2)) * peak).astype(np.float32)


def heatmap_cells(points_xy, input_size=128, label_size=64):
    """(..., 2) x/y points in input pixels -> int32 heatmap cells (truncated, as the original)."""
    scale = float(label_size) / input_size
    return (np.asarray(points_xy, dtype=np.float64) * scale).astype(np.int32)


def heatmap_centres(points_xy, input_size=128, label_size=64):
    """(..., 2) x/y points in input pixels -> float positions on the map, in cells, such that
    the decoders' (cell + 0.5) * stride maps them back to the points: a point in cell c sits
    in [c - 0.5, c + 0.5)."""
    return np.asarray(points_xy, dtype=np.float64) * (float(label_size) / input_size) - 0.5


def mirror_cells(cells, label_size=64):
    """Cells (int) or centres (float) of a horizontally flipped map (same landmark order)."""
    cells = np.asarray(cells)
    mirrored = np.array(cells, dtype=cells.dtype if cells.dtype.kind == 'f' else np.int32)
    mirrored[..., 0] = label_size - 1 - mirrored[..., 0]
    return mirrored


def render_heatmaps_numpy(out, cells, kernel):
    """Reference of cxx.heatmap.render_gaussians: write `kernel` centred on each cell (x, y) of
    cells[n, k] into out[n, k] (N, K, H, W), clipped at the borders."""
    height, width = out.shape[2:]
    radius = kernel.shape[0] // 2
    for n, k in np.ndindex(*cells.shape[:2]):
        top, left = int(cells[n, k, 1]) - radius, int(cells[n, k, 0]) - radius
        y0, y1 = max(top, 0), min(top + kernel.shape[0], height)
        x0, x1 = max(left, 0), min(left + kernel.shape[1], width)
        if y0 < y1 and x0 < x1:
            out[n, k, y0:y1, x0:x1] = kernel[y0 - top:y1 - top, x0 - left:x1 - left]


def render_heatmaps(out, cells, sigma=1, peak=20.0):
    """Draw the target of integer cells (N, K, 2) into the zeroed float32 array out
    (N, K, H, W), in place."""
    kernel = gaussian_kernel(sigma, peak)
    cells = np.ascontiguousarray(cells, dtype=np.int32)
    if _kernels is not None and out.flags.c_contiguous and out.dtype == np.float32:
        _kernels.render_gaussians(out, cells, kernel)
    else:
        render_heatmaps_numpy(out, cells, kernel)


def render_heatmaps_at(out, centres, sigma=1, peak=20.0):
    """Draw Gaussians (`sigma` cells, height `peak`) centred on the float positions (N, K, 2)
    into the zeroed float32 array out (N, K, H, W), each on the (6 sigma + 1)^2 window around
    its nearest cell, clipped at the borders: the sub-pixel counterpart of render_heatmaps."""
    gaussian_kernel(sigma, peak)   # the same sigma check
    height, width = out.shape[2:]
    radius = 3 * int(sigma)
    centres = np.asarray(centres, dtype=np.float64)
    steps = np.arange(-radius, radius + 1)
    nearest = np.floor(centres + 0.5).astype(np.int64)
    xs = nearest[..., 0, None] + steps                                   # (N, K, w)
    ys = nearest[..., 1, None] + steps
    gx = np.exp(-(xs - centres[..., 0, None]) ** 2 / (2.0 * sigma ** 2))
    gy = np.exp(-(ys - centres[..., 1, None]) ** 2 / (2.0 * sigma ** 2))
    values = (peak * gy[..., :, None] * gx[..., None, :]).astype(np.float32)   # (N, K, h, w)
    n, k = np.indices(centres.shape[:2])
    rows = np.broadcast_to(ys[..., :, None], values.shape)
    cols = np.broadcast_to(xs[..., None, :], values.shape)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index = np.broadcast_to(n[..., None, None], values.shape), np.broadcast_to(
        k[..., None, None], values.shape)
    out[index[0][inside], index[1][inside], rows[inside], cols[inside]] = values[inside]


def encode_heatmaps(points_xy, input_size=128, label_size=64, sigma=1, peak=20.0):
    """(K, 2) x/y points in input pixels -> (K, label_size, label_size) float32 target."""
    cells = heatmap_cells(points_xy, input_size, label_size)
    out = np.zeros((1, cells.shape[0], label_size, label_size), dtype=np.float32)
    render_heatmaps(out, cells[np.newaxis], sigma, peak)
    return out[0]


def _parabola_vertex(before, peak, after):
    curvature = before - 2.0 * peak + after
    safe = np.where(curvature < 0, curvature, -1.0)
    return np.where(curvature < 0, 0.5 * (before - after) / safe, 0.0)


def _maximum_cells(maps):
    """(flat (N, K, H * W) maps, row, column of each map's first maximum)."""
    flat = maps.reshape(maps.shape[:2] + (-1,))
    best_y, best_x = np.divmod(flat.argmax(axis=-1), maps.shape[3])
    return flat, best_y, best_x


def refine_peaks_numpy(heatmaps):
    """Reference of cxx.heatmap.refine_peaks: (N, K, H, W) -> (N, K, 2) x/y in cells, the first
    maximum moved by a parabola fit through its neighbours along each axis."""
    maps = np.asarray(heatmaps, dtype=np.float32)
    height, width = maps.shape[2:]
    flat, best_y, best_x = _maximum_cells(maps)

    def value(rows, cols):
        index = (np.clip(rows, 0, height - 1) * width + np.clip(cols, 0, width - 1))[..., None]
        return np.take_along_axis(flat, index, axis=-1)[..., 0].astype(np.float64)

    peak = value(best_y, best_x)
    dx = _parabola_vertex(value(best_y, best_x - 1), peak, value(best_y, best_x + 1))
    dy = _parabola_vertex(value(best_y - 1, best_x), peak, value(best_y + 1, best_x))
    dx = np.where((best_x > 0) & (best_x < width - 1), dx, 0.0)
    dy = np.where((best_y > 0) & (best_y < height - 1), dy, 0.0)
    return np.stack([best_x + dx, best_y + dy], axis=-1)


def log_likelihood_maps(maps, sigma=1, logits=False):
    """DARK's modulation (Zhang et al., CVPR 2020): each map as a log-likelihood whose peak is
    close to a quadratic. A Gaussian-target (l2) map is smoothed with the target's own Gaussian,
    rescaled to its former maximum and floored at 1e-10 before the log; the maps of a
    cross-entropy model are logits, already a log-likelihood up to a constant, and pass as
    they are."""
    maps = np.asarray(maps, dtype=np.float32)
    if logits:
        return maps.astype(np.float64)
    radius = 3 * int(sigma)
    smoothed = np.empty_like(maps)
    for index in np.ndindex(*maps.shape[:2]):
        smoothed[index] = cv2.GaussianBlur(maps[index], (2 * radius + 1, 2 * radius + 1), sigma)
    before = maps.max(axis=(2, 3), keepdims=True)
    after = smoothed.max(axis=(2, 3), keepdims=True)
    scaled = smoothed * np.where(after > 0, before / np.where(after > 0, after, 1), 1)
    return np.log(np.maximum(scaled, 1e-10).astype(np.float64))


def taylor_peaks(log_maps):
    """(N, K, H, W) log-likelihood maps -> (N, K, 2) x/y in cells: each maximum moved to the
    vertex of the second-order Taylor expansion there, offset = -Hessian^-1 gradient (central
    differences). Peaks on the border or where the Hessian is not negative definite keep
    their cell; offsets are clipped to one cell."""
    height, width = log_maps.shape[2:]
    flat, best_y, best_x = _maximum_cells(log_maps)
    inside = (best_x > 0) & (best_x < width - 1) & (best_y > 0) & (best_y < height - 1)
    y, x = np.clip(best_y, 1, height - 2), np.clip(best_x, 1, width - 2)

    def at(dy, dx):
        index = ((y + dy) * width + (x + dx))[..., None]
        return np.take_along_axis(flat, index, axis=-1)[..., 0]

    centre = at(0, 0)
    grad_x, grad_y = 0.5 * (at(0, 1) - at(0, -1)), 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * centre + at(0, -1)
    dyy = at(1, 0) - 2 * centre + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = inside & (det > 0) & (dxx < 0)
    safe_det = np.where(usable, det, 1.0)
    offset_x = -(dyy * grad_x - dxy * grad_y) / safe_det
    offset_y = -(dxx * grad_y - dxy * grad_x) / safe_det
    offsets = np.clip(np.stack([offset_x, offset_y], axis=-1), -1.0, 1.0)
    offsets[~usable] = 0.0
    return np.stack([best_x, best_y], axis=-1) + offsets


def _window_weights(maps, logits, radius):
    """Each map's distribution within `radius` cells of its maximum: (weights (N, K, 2r+1,
    2r+1) summing to 1, or all 0 where nothing near the maximum is positive (l2), the window's
    rows (N, K, 2r+1) and columns, and each maximum's row and column). A cross-entropy model's
    maps are the logits of a spatial softmax, so the weights are exp(map - max); an l2 model's
    maps regress a Gaussian, so the weights are the map's positive part."""
    maps = np.asarray(maps, dtype=np.float32)
    height, width = maps.shape[2:]
    flat, best_y, best_x = _maximum_cells(maps)
    offsets = np.arange(-radius, radius + 1)
    rows = best_y[..., None] + offsets                          # (N, K, 2r+1)
    cols = best_x[..., None] + offsets
    valid = (((rows >= 0) & (rows < height))[..., :, None]
             & ((cols >= 0) & (cols < width))[..., None, :])
    index = (np.clip(rows, 0, height - 1)[..., :, None] * width
             + np.clip(cols, 0, width - 1)[..., None, :])
    values = np.take_along_axis(flat, index.reshape(index.shape[:2] + (-1,)), axis=-1)
    values = values.reshape(index.shape).astype(np.float64)
    if logits:
        weights = np.exp(values - flat.max(axis=-1)[..., None, None])
    else:
        weights = np.maximum(values, 0.0)
    weights = np.where(valid, weights, 0.0)
    total = weights.sum(axis=(-2, -1), keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    return weights, rows, cols, best_y, best_x


def expected_peaks(maps, logits=False, radius=EXPECTATION_RADIUS):
    """(N, K, H, W) maps -> (N, K, 2) x/y in cells: the mean cell position under each map's
    distribution within `radius` cells of its maximum (_window_weights). The mean, unlike the
    mode that 'subpixel' and 'dark' refine, is the position of least expected squared error
    under that distribution, which counts where a point's position is uncertain along an
    edge (the jaw)."""
    weights, rows, cols, best_y, best_x = _window_weights(maps, logits, radius)
    found = weights.sum(axis=(-2, -1)) > 0
    # A map with nothing positive near its maximum (l2) keeps the maximum's cell.
    x = np.where(found, (weights * cols[..., None, :]).sum(axis=(-2, -1)), best_x)
    y = np.where(found, (weights * rows[..., :, None]).sum(axis=(-2, -1)), best_y)
    return np.stack([x, y], axis=-1)


def peak_variances(maps, logits=False, radius=EXPECTATION_RADIUS):
    """(N, K, H, W) maps -> (N, K) variance, in cells squared, of each map's distribution
    within `radius` cells of its maximum (_window_weights), the mean of its x and y
    variances: how unsure the network is of each point, whatever the direction. A map with
    nothing positive near its maximum (l2) gets the window's uniform variance."""
    weights, rows, cols, _, _ = _window_weights(maps, logits, radius)
    side = 2 * radius + 1
    weights = np.where(weights.sum(axis=(-2, -1), keepdims=True) > 0, weights,
                       1.0 / side ** 2)
    column_weights, row_weights = weights.sum(axis=-2), weights.sum(axis=-1)

    def variance(position, weight):
        mean = (weight * position).sum(axis=-1, keepdims=True)
        return (weight * (position - mean) ** 2).sum(axis=-1)
    return (variance(cols, column_weights) + variance(rows, row_weights)) / 2


def _decode_argmax(maps, input_size):
    """The original decoding: each map resized to input_size^2 (cv2 bilinear), integer argmax."""
    num, count = maps.shape[:2]
    resized = np.empty((num * count, input_size, input_size), dtype=np.float32)
    # One cv2 call per map, as the original: cv2's multi-channel resize rounds differently
    # (1 ulp), which can move an argmax between tied neighbours.
    for plane, heatmap in zip(resized, maps.reshape((num * count,) + maps.shape[2:])):
        cv2.resize(heatmap, (input_size, input_size), dst=plane)
    best = resized.reshape(num, count, -1).argmax(axis=-1)
    rows, cols = np.divmod(best, input_size)
    return np.stack([cols, rows], axis=-1).astype(np.float64)


def decode_heatmaps(heatmaps, input_size=128, method='argmax', sigma=1, logits=False):
    """(N, K, h, w) heatmaps -> (N, K, 2) float64 x/y in input-image pixels.

    'argmax' is the original's decoding (integer pixels). 'subpixel' refines the peak at
    heatmap resolution with a parabola per axis; 'dark' with the Taylor step of DARK on the
    modulated log maps (`sigma`: the target Gaussian's; `logits`: the maps are a
    cross-entropy model's logits); 'expectation' takes the mean position near the peak
    (expected_peaks). A cell c stands for the input pixels [c * stride, (c + 1) * stride)
    that the target quantised onto it, so the refinements estimate (c + offset + 0.5) *
    stride.
    """
    maps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    if maps.ndim != 4:
        raise ValueError('decode_heatmaps needs (N, K, h, w) maps, got shape %s' % (maps.shape,))
    if method == 'argmax':
        return _decode_argmax(maps, input_size)
    if method in ('subpixel', 'dark', 'expectation'):
        if method == 'expectation':
            peaks = expected_peaks(maps, logits)
        elif method == 'dark':
            peaks = taylor_peaks(log_likelihood_maps(maps, sigma, logits))
        elif _kernels is not None:
            peaks = _kernels.refine_peaks(maps)
        else:
            peaks = refine_peaks_numpy(maps)
        stride = np.array([input_size / maps.shape[3], input_size / maps.shape[2]])
        return (peaks + 0.5) * stride
    raise ValueError('unknown decode method %r; valid: %s' % (method, ', '.join(DECODE_METHODS)))


def peak_confidence(heatmaps, loss='l2', sigma=1, peak=20.0):
    """(N, K, h, w) maps -> (N,) how sure the network is of each face, in 0..1: the mean over
    the K maps of each map's peak as a fraction of the training target's peak, capped at 1.

    For an 'l2' model the peak is the map's maximum and the target's is `peak`. For a 'ce'
    model it is the maximum of the map's spatial softmax, and the target's is that of the
    target Gaussian normalised to sum 1 (about 0.16 for sigma 1), the distribution the loss
    fits. A face like the training crops scores near 1; a crop without a face (a lost track)
    scores near 0, because its maps have no clear peak.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError('peak_confidence needs (N, K, h, w) maps, got shape %s' % (maps.shape,))
    flat = maps.reshape(maps.shape[:2] + (-1,))
    kernel = gaussian_kernel(sigma, peak)
    if loss == 'l2':
        peaks, target = flat.max(axis=-1), float(peak)
    elif loss == 'ce':
        exp = np.exp(flat - flat.max(axis=-1, keepdims=True))
        peaks, target = 1.0 / exp.sum(axis=-1), float(kernel.max() / kernel.sum())
    else:
        raise ValueError('unknown heatmap loss %r; valid: %s'
                         % (loss, ', '.join(HEATMAP_LOSSES)))
    return np.clip(peaks / target, 0.0, 1.0).mean(axis=1)


@dataclass(frozen=True)
class HeatmapCodec:
    """Points <-> heatmaps for one network geometry: `input_size` (crop side), `heatmap_size`
    (map side), Gaussian `sigma` and the default `decode` method ('argmax' is the original
    protocol's, 'subpixel' and 'dark' refine each peak). `loss`: the heatmap loss the network
    was trained with ('l2' maps regress the Gaussian target, 'ce' maps are the logits of a
    spatial softmax), which 'dark' decoding and the peak confidence read differently.
    `target`: training targets on the truncated cell ('cell', the original's) or on the exact
    position ('subpixel')."""
    input_size: int = 128
    heatmap_size: int = 64
    sigma: int = 1
    decode_method: str = 'argmax'
    peak: float = 20.0
    loss: str = 'l2'
    target: str = 'cell'

    def __post_init__(self):
        if self.decode_method not in DECODE_METHODS:
            raise ValueError('unknown decode method %r; valid: %s'
                             % (self.decode_method, ', '.join(DECODE_METHODS)))
        if self.loss not in HEATMAP_LOSSES:
            raise ValueError('unknown heatmap loss %r; valid: %s'
                             % (self.loss, ', '.join(HEATMAP_LOSSES)))
        if self.target not in TARGET_ENCODINGS:
            raise ValueError('unknown target encoding %r; valid: %s'
                             % (self.target, ', '.join(TARGET_ENCODINGS)))
        if self.input_size < 1 or self.heatmap_size < 1 or self.input_size % self.heatmap_size:
            raise ValueError('heatmap codec needs an input size that is a multiple of the '
                             'heatmap size, got %r/%r' % (self.input_size, self.heatmap_size))
        gaussian_kernel(self.sigma, self.peak)

    @classmethod
    def from_config(cls, cfg, decode='argmax'):
        return cls(cfg['input_img_size'], cfg['output_label_size'], cfg['gaussian'], decode,
                   loss=cfg['net_loss'], target=cfg['target_encoding'])

    def cells(self, points_xy):
        return heatmap_cells(points_xy, self.input_size, self.heatmap_size)

    def centres(self, points_xy):
        return heatmap_centres(points_xy, self.input_size, self.heatmap_size)

    def render(self, out, cells, centres):
        """Training targets into the zeroed (N, K, H, W) float32 `out`: on the integer cells
        (N, K, 2), or with the 'subpixel' target on the float centres (N, K, 2)."""
        if self.target == 'subpixel':
            render_heatmaps_at(out, centres, self.sigma, self.peak)
        else:
            render_heatmaps(out, cells, self.sigma, self.peak)

    def encode(self, points_xy):
        return encode_heatmaps(points_xy, self.input_size, self.heatmap_size, self.sigma,
                               self.peak)

    def decode(self, heatmaps, method=None):
        """(N, K, h, w) maps -> (N, K, 2) x/y in input pixels; refuses maps of another size,
        which would decode onto the wrong scale without a word."""
        shape = np.shape(heatmaps)
        if len(shape) == 4 and tuple(shape[2:]) != (self.heatmap_size, self.heatmap_size):
            raise ValueError('heatmaps are %d x %d but this codec decodes %d x %d maps of a '
                             '%d x %d input' % (shape[2], shape[3], self.heatmap_size,
                                                self.heatmap_size, self.input_size,
                                                self.input_size))
        return decode_heatmaps(heatmaps, self.input_size, method or self.decode_method,
                               self.sigma, self.loss == 'ce')

    def confidence(self, heatmaps):
        """(N, K, h, w) maps -> (N,) peak confidence in 0..1 (peak_confidence)."""
        return peak_confidence(heatmaps, self.loss, self.sigma, self.peak)

    def variances(self, heatmaps):
        """(N, K, h, w) maps -> (N, K) variance of each point in input pixels squared
        (peak_variances)."""
        stride = self.input_size / self.heatmap_size
        return peak_variances(heatmaps, self.loss == 'ce') * stride ** 2
