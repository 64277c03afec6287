# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled heatmap kernels; data/codec.py holds the numpy reference of each and falls back to
it when this extension is not built."""
import numpy as np


def render_gaussians(float[:, :, :, ::1] out, const int[:, :, ::1] cells,
                     const float[:, ::1] kernel):
    """Write `kernel` (a (2r+1)^2 window) centred on each integer cell (x, y) of
    cells[n, k] into out[n, k], clipped at the map borders; cells outside draw nothing."""
    cdef Py_ssize_t n, k, y, x, ky, kx
    cdef Py_ssize_t height = out.shape[2], width = out.shape[3]
    cdef Py_ssize_t radius = kernel.shape[0] // 2
    cdef Py_ssize_t cx, cy
    with nogil:
        for n in range(cells.shape[0]):
            for k in range(cells.shape[1]):
                cx = cells[n, k, 0]
                cy = cells[n, k, 1]
                for ky in range(kernel.shape[0]):
                    y = cy - radius + ky
                    if y < 0 or y >= height:
                        continue
                    for kx in range(kernel.shape[1]):
                        x = cx - radius + kx
                        if 0 <= x < width:
                            out[n, k, y, x] = kernel[ky, kx]


cdef inline double _vertex(double before, double peak, double after) nogil:
    """Offset of the vertex of the parabola through (-1, before), (0, peak), (1, after)."""
    cdef double curvature = before - 2.0 * peak + after
    if curvature < 0.0:
        return 0.5 * (before - after) / curvature
    return 0.0


def refine_peaks(const float[:, :, :, ::1] heatmaps):
    """(N, K, H, W) maps -> (N, K, 2) float64 x/y peak positions in heatmap cells: the first
    maximum in row-major order, moved by a parabola fit through its neighbours along x and y
    (no move along an axis where the peak sits on the border)."""
    cdef Py_ssize_t num = heatmaps.shape[0], maps = heatmaps.shape[1]
    cdef Py_ssize_t height = heatmaps.shape[2], width = heatmaps.shape[3]
    result = np.zeros((num, maps, 2), dtype=np.float64)
    cdef double[:, :, ::1] peaks = result
    cdef Py_ssize_t n, k, y, x, best_x, best_y
    cdef float best
    cdef double dx, dy
    with nogil:
        for n in range(num):
            for k in range(maps):
                best = heatmaps[n, k, 0, 0]
                best_x = 0
                best_y = 0
                for y in range(height):
                    for x in range(width):
                        if heatmaps[n, k, y, x] > best:
                            best = heatmaps[n, k, y, x]
                            best_x = x
                            best_y = y
                dx = 0.0
                dy = 0.0
                if 0 < best_x < width - 1:
                    dx = _vertex(heatmaps[n, k, best_y, best_x - 1], best,
                                 heatmaps[n, k, best_y, best_x + 1])
                if 0 < best_y < height - 1:
                    dy = _vertex(heatmaps[n, k, best_y - 1, best_x], best,
                                 heatmaps[n, k, best_y + 1, best_x])
                peaks[n, k, 0] = best_x + dx
                peaks[n, k, 1] = best_y + dy
    return result
