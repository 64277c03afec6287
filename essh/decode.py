"""From the ESSH network outputs to scored face boxes with five points (the original's path).

Per stride: anchor plane over the output map, decode boxes and points, clip them to the
image, keep the `pre_nms_top_n` best scores; then all strides (and scales) together: score
threshold, NMS at `nms_threshold`, best first.
"""
import numpy as np

from .anchors import STRIDES, anchor_plane, stride_anchors
from .boxes import clip_boxes, clip_points, decode_boxes, decode_points, nms, score_order

PRE_NMS_TOP_N = 1000
NMS_THRESHOLD = 0.3


def _cells_last(tensor, per_anchor):
    """(1, A * per_anchor, H, W) -> (H * W * A, per_anchor), in anchor-plane order."""
    return np.transpose(tensor[0], (1, 2, 0)).reshape(-1, per_anchor)


def decode_stride(score_map, box_map, point_map, stride, base_anchors, image_shape,
                  pre_nms_top_n=PRE_NMS_TOP_N):
    """One stride's candidates: (boxes (K, 4), scores (K,), points (K, 5, 2)), best first.

    score_map (1, 2A, H, W) holds background probabilities in its first A channels and face
    probabilities in the last A; box_map (1, 4A, H, W) and point_map (1, 10A, H, W) the deltas.
    """
    num_anchors = base_anchors.shape[0]
    height, width = box_map.shape[2:]
    anchors = anchor_plane(height, width, stride, base_anchors).reshape(-1, 4)
    # The score map can be larger than the regression maps; the original clips it to them.
    scores = _cells_last(score_map[:, num_anchors:, :height, :width], 1)[:, 0]
    order = score_order(scores)
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    anchors = anchors[order]
    boxes = decode_boxes(anchors, _cells_last(box_map, 4)[order])
    points = decode_points(anchors, _cells_last(point_map, 10)[order])
    return clip_boxes(boxes, image_shape), scores[order], clip_points(points, image_shape)


def scale_candidates(net_outputs, image_shape, image_scale=1.0, strides=STRIDES,
                     pre_nms_top_n=PRE_NMS_TOP_N):
    """Candidates of one forward pass, all strides concatenated: (boxes (K, 4), scores (K,),
    points (K, 5, 2)) in the coordinates of the image before it was scaled by image_scale.

    net_outputs: the network's numpy outputs, three per stride in STRIDES order;
    image_shape: (height, width) of the image the network saw. `strides` may name a subset
    (the original skips stride 32 on the last scale of a pyramid).
    """
    anchors = stride_anchors()
    found = []
    for index, stride in enumerate(STRIDES):
        if stride in strides:
            score_map, box_map, point_map = net_outputs[3 * index:3 * index + 3]
            found.append(decode_stride(score_map, box_map, point_map, stride, anchors[stride],
                                       image_shape, pre_nms_top_n))
    boxes, scores, points = (np.concatenate(parts) for parts in zip(*found))
    return boxes / image_scale, scores, points / image_scale


def select_detections(candidates, threshold, nms_threshold=NMS_THRESHOLD):
    """Candidates of one or more scales (a list of `scale_candidates` results) -> those scoring
    >= threshold that survive NMS: (boxes (N, 4), scores (N,), points (N, 5, 2)), best first.

    Thresholding before NMS gives the original's result (NMS, then threshold): a box below
    the threshold can only suppress lower-scoring boxes, which the threshold drops anyway.
    """
    boxes, scores, points = (np.concatenate(parts) for parts in zip(*candidates))
    passing = np.flatnonzero(scores >= threshold)
    # The original runs NMS on float32 detections.
    keep = passing[nms(boxes[passing].astype(np.float32), scores[passing], nms_threshold)]
    return boxes[keep], scores[keep], points[keep]
