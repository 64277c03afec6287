"""Box and five-point regression against anchors, clipping, overlaps and NMS.

All boxes are (x1, y1, x2, y2) in the original's pixel-inclusive convention (see anchors.py).
Overlaps and NMS have numpy reference implementations; the Cython kernels are used when built.
"""
import numpy as np

from ._kernels import ext


def box_sizes(boxes):
    """(widths, heights) of (N, 4) pixel-inclusive boxes."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0


def _centre_size(boxes):
    boxes = np.asarray(boxes, dtype=np.float64)
    widths, heights = box_sizes(boxes)
    return boxes[:, 0] + 0.5 * (widths - 1.0), boxes[:, 1] + 0.5 * (heights - 1.0), widths, heights


def decode_boxes(anchors, deltas):
    """Boxes (N, 4) from per-anchor deltas (dx, dy, dw, dh): centre shift scaled by the anchor
    size, size scaled by exp(dw), exp(dh)."""
    cx, cy, w, h = _centre_size(anchors)
    deltas = np.asarray(deltas, dtype=np.float64)
    pred_cx = deltas[:, 0] * w + cx
    pred_cy = deltas[:, 1] * h + cy
    pred_w = np.exp(deltas[:, 2]) * w
    pred_h = np.exp(deltas[:, 3]) * h
    return np.stack([pred_cx - 0.5 * (pred_w - 1.0), pred_cy - 0.5 * (pred_h - 1.0),
                     pred_cx + 0.5 * (pred_w - 1.0), pred_cy + 0.5 * (pred_h - 1.0)], axis=1)


def encode_boxes(anchors, boxes):
    """The regression targets (N, 4) that `decode_boxes` turns back into `boxes`."""
    acx, acy, aw, ah = _centre_size(anchors)
    bcx, bcy, bw, bh = _centre_size(boxes)
    return np.stack([(bcx - acx) / aw, (bcy - acy) / ah, np.log(bw / aw), np.log(bh / ah)], axis=1)


def decode_points(anchors, deltas):
    """Five points (N, 5, 2) from per-anchor deltas (N, 10) ordered x1, y1, ..., x5, y5:
    each point is the anchor centre plus the delta times the anchor size."""
    cx, cy, w, h = _centre_size(anchors)
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1, 5, 2)
    return np.stack([deltas[:, :, 0] * w[:, None] + cx[:, None],
                     deltas[:, :, 1] * h[:, None] + cy[:, None]], axis=2)


def encode_points(anchors, points):
    """The regression targets (N, 10) that `decode_points` turns back into `points` (N, 5, 2)."""
    cx, cy, w, h = _centre_size(anchors)
    points = np.asarray(points, dtype=np.float64)
    return np.stack([(points[:, :, 0] - cx[:, None]) / w[:, None],
                     (points[:, :, 1] - cy[:, None]) / h[:, None]], axis=2).reshape(-1, 10)


def clip_boxes(boxes, image_shape):
    """Boxes with x in [0, width - 1] and y in [0, height - 1] of image_shape (height, width)."""
    height, width = image_shape[:2]
    clipped = np.array(boxes, dtype=np.float64)
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width - 1)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height - 1)
    return clipped


def clip_points(points, image_shape):
    """Points (N, 5, 2) clipped to the image like `clip_boxes`."""
    height, width = image_shape[:2]
    clipped = np.array(points, dtype=np.float64)
    clipped[..., 0] = np.clip(clipped[..., 0], 0, width - 1)
    clipped[..., 1] = np.clip(clipped[..., 1], 0, height - 1)
    return clipped


def box_areas(boxes):
    widths, heights = box_sizes(boxes)
    return widths * heights


def box_overlaps_numpy(boxes, query_boxes):
    """IoU matrix (N, K) between boxes (N, 4) and query_boxes (K, 4), float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    query_boxes = np.asarray(query_boxes, dtype=np.float64)
    inter_w = (np.minimum(boxes[:, None, 2], query_boxes[None, :, 2])
               - np.maximum(boxes[:, None, 0], query_boxes[None, :, 0]) + 1.0)
    inter_h = (np.minimum(boxes[:, None, 3], query_boxes[None, :, 3])
               - np.maximum(boxes[:, None, 1], query_boxes[None, :, 1]) + 1.0)
    inter = np.maximum(inter_w, 0.0) * np.maximum(inter_h, 0.0)
    union = box_areas(boxes)[:, None] + box_areas(query_boxes)[None, :] - inter
    return np.where(inter > 0, inter / np.where(inter > 0, union, 1.0), 0.0)


def box_overlaps(boxes, query_boxes):
    """`box_overlaps_numpy`, computed by the Cython kernel when it is built."""
    if ext is None:
        return box_overlaps_numpy(boxes, query_boxes)
    return ext.box_overlaps(np.ascontiguousarray(boxes, dtype=np.float64),
                            np.ascontiguousarray(query_boxes, dtype=np.float64))


def score_order(scores):
    """Indices by descending score; ties keep their input order so every NMS agrees."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind='stable')


NMS_MODES = ('union', 'min')


def _check_nms_mode(mode):
    if mode not in NMS_MODES:
        raise ValueError('NMS mode must be one of %s, got %r' % (', '.join(NMS_MODES), mode))


def nms_numpy(boxes, scores, iou_threshold, mode='union'):
    """Greedy NMS: indices of the kept boxes, best first.

    A box is dropped when its overlap with an already kept, higher-scoring box exceeds the
    threshold (strictly, as the original's GPU NMS does). The overlap is the intersection over
    the union (`mode='union'`, IoU), or over the smaller of the two boxes (`mode='min'`, as
    MTCNN merges its last stage's boxes).
    """
    _check_nms_mode(mode)
    boxes = np.asarray(boxes, dtype=np.float64)
    order = score_order(scores)
    areas = box_areas(boxes)
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(boxes[best, 2], boxes[rest, 2])
                             - np.maximum(boxes[best, 0], boxes[rest, 0]) + 1.0)
        inter_h = np.maximum(0.0, np.minimum(boxes[best, 3], boxes[rest, 3])
                             - np.maximum(boxes[best, 1], boxes[rest, 1]) + 1.0)
        inter = inter_w * inter_h
        if mode == 'min':
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def nms(boxes, scores, iou_threshold, mode='union'):
    """`nms_numpy`, computed by the Cython kernel when it is built."""
    _check_nms_mode(mode)
    if ext is None:
        return nms_numpy(boxes, scores, iou_threshold, mode)
    return ext.nms(np.ascontiguousarray(boxes, dtype=np.float64), score_order(scores),
                   float(iou_threshold), mode)
