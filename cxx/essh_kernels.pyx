# cython: boundscheck=False, wraparound=False, cdivision=True
"""ESSH and MTCNN detector hot loops; numpy references: essh.anchors.anchor_plane_numpy,
essh.boxes.box_overlaps_numpy, essh.boxes.nms_numpy (same arithmetic, same results)."""
import numpy as np
cimport numpy as cnp

cnp.import_array()


def anchor_plane(int height, int width, int stride, const float[:, ::1] base_anchors):
    """(height, width, A, 4) float32: base anchors shifted by (col * stride, row * stride)."""
    cdef Py_ssize_t num_anchors = base_anchors.shape[0]
    out = np.empty((height, width, num_anchors, 4), dtype=np.float32)
    cdef float[:, :, :, ::1] plane = out
    cdef Py_ssize_t row, col, a
    cdef float shift_x, shift_y
    for row in range(height):
        shift_y = row * stride
        for col in range(width):
            shift_x = col * stride
            for a in range(num_anchors):
                plane[row, col, a, 0] = base_anchors[a, 0] + shift_x
                plane[row, col, a, 1] = base_anchors[a, 1] + shift_y
                plane[row, col, a, 2] = base_anchors[a, 2] + shift_x
                plane[row, col, a, 3] = base_anchors[a, 3] + shift_y
    return out


def box_overlaps(const double[:, ::1] boxes, const double[:, ::1] query_boxes):
    """IoU matrix (N, K) float64 with the pixel-inclusive (+1) box convention."""
    cdef Py_ssize_t n = boxes.shape[0], k = query_boxes.shape[0], i, j
    out = np.zeros((n, k), dtype=np.float64)
    cdef double[:, ::1] overlaps = out
    cdef double inter_w, inter_h, inter, query_area, box_area
    for j in range(k):
        query_area = ((query_boxes[j, 2] - query_boxes[j, 0] + 1.0)
                      * (query_boxes[j, 3] - query_boxes[j, 1] + 1.0))
        for i in range(n):
            inter_w = (min(boxes[i, 2], query_boxes[j, 2])
                       - max(boxes[i, 0], query_boxes[j, 0]) + 1.0)
            if inter_w <= 0:
                continue
            inter_h = (min(boxes[i, 3], query_boxes[j, 3])
                       - max(boxes[i, 1], query_boxes[j, 1]) + 1.0)
            if inter_h <= 0:
                continue
            inter = inter_w * inter_h
            box_area = (boxes[i, 2] - boxes[i, 0] + 1.0) * (boxes[i, 3] - boxes[i, 1] + 1.0)
            overlaps[i, j] = inter / (box_area + query_area - inter)
    return out


def nms(const double[:, ::1] boxes, const cnp.int64_t[::1] order, double iou_threshold,
        str mode='union'):
    """Greedy NMS over boxes visited in `order`; returns kept indices (int64), best first.
    A box is suppressed when its overlap with a kept box exceeds the threshold; the overlap is
    the intersection over the union (mode 'union') or over the smaller box (mode 'min')."""
    if mode != 'union' and mode != 'min':
        raise ValueError("NMS mode must be 'union' or 'min', got %r" % (mode,))
    cdef bint over_min = mode == 'min'
    cdef Py_ssize_t n = order.shape[0], oi, oj, i, j, num_kept = 0
    cdef cnp.uint8_t[::1] suppressed = np.zeros(boxes.shape[0], dtype=np.uint8)
    keep_arr = np.empty(n, dtype=np.int64)
    cdef cnp.int64_t[::1] keep = keep_arr
    cdef double[::1] areas = np.empty(boxes.shape[0], dtype=np.float64)
    cdef double inter_w, inter_h, inter, denominator
    for i in range(boxes.shape[0]):
        areas[i] = (boxes[i, 2] - boxes[i, 0] + 1.0) * (boxes[i, 3] - boxes[i, 1] + 1.0)
    for oi in range(n):
        i = order[oi]
        if suppressed[i]:
            continue
        keep[num_kept] = i
        num_kept += 1
        for oj in range(oi + 1, n):
            j = order[oj]
            if suppressed[j]:
                continue
            inter_w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + 1.0
            inter_h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + 1.0
            if inter_w < 0:
                inter_w = 0
            if inter_h < 0:
                inter_h = 0
            inter = inter_w * inter_h
            if over_min:
                denominator = min(areas[i], areas[j])
            else:
                denominator = areas[i] + areas[j] - inter
            if inter / denominator > iou_threshold:
                suppressed[j] = 1
    return keep_arr[:num_kept]
