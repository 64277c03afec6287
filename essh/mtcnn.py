"""The MTCNN face detector (Zhang et al. 2016), the toolkit's bundled detector.

A cascade over the weights in models/mtcnn (networks in mtcnn_nets.py):

1. **P-Net** on an image pyramid (scales (12 / min_size) * 0.709^k while the scaled image's
   shorter side is at least 12 px). Each map cell scoring > thresholds[0] is a 12 x 12 window
   at stride 2 of the scaled image; NMS 'union' 0.5 within each scale, then 0.7 across scales;
   the regression moves the windows, which are squared and rounded.
2. **R-Net** on every candidate at once (24 x 24 cuts, zero padded outside the image): score
   > thresholds[1], NMS 'union' 0.7, regression, squared and rounded.
3. **O-Net** on the survivors (48 x 48 cuts): score > thresholds[2], five points from the box
   it saw, regression, NMS 'min' 0.7.
4. **L-Net** (with `refine_points`, the default): a patch of a quarter of the final box's
   side around each point, 24 x 24; each point moves to where L-Net puts it in its patch,
   unless L-Net's answer is more than 0.35 patch sides from the centre.
5. **Second chance** (not in the published port): an image where stages 1-3 keep no face is
   searched again with lower score cuts (RETRY_THRESHOLDS) for faces of at least
   RETRY_MIN_SIZE px.

All boxes are (x1, y1, x2, y2) pixel-inclusive (a box is x2 - x1 + 1 wide), as in essh/.
Every NMS is essh.boxes.nms. Executors are bound once per input shape and reused: one per
P-Net pyramid level size (least recently used dropped beyond PNET_CACHE), one per batch size
of BUCKETS for R-, O- and L-Net.

Differences from the published MXNet port (deepinx/mtcnn-face-detection):
- images and cuts are shrunk by pixel-area averaging, not bilinear sampling (see `resize`);
- its padding step clipped the boxes to the image in place, so for a face cut by the image
  border the next regression and O-Net's points were applied to the clipped box instead of
  the square the network saw; here they use the square;
- a pyramid level whose shorter side is exactly 12 px is kept, and L-Net's points are not
  rounded to whole pixels.
"""
import collections
import logging
import math
import os

import cv2
import mxnet as mx
import numpy as np

from data.images import to_bgr8

from .boxes import box_sizes, nms
from .detector import default_context
from .face import faces_from_arrays
from .mtcnn_nets import NUM_POINTS, load_net

logger = logging.getLogger(__name__)

MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         'models', 'mtcnn')
THRESHOLDS = (0.6, 0.7, 0.8)
# The second chance: an image in which the cascade finds nothing at THRESHOLDS is searched
# again with these cuts, for faces of at least RETRY_MIN_SIZE px. Chosen on training photos
# (models/mtcnn/README.md): it finds 29 of the 35 faces, most turned far aside, that
# THRESHOLDS misses in the 800 AFLW2000-3D training photos, and fires on 0.9% of 300-W
# training photos whose face was blanked out, where THRESHOLDS fires on 2.0%. Without the
# larger smallest face, looser cuts fire on small patches of texture.
RETRY_THRESHOLDS = (0.3, 0.3, 0.4)
RETRY_MIN_SIZE = 80
MIN_SIZE = 20
PYRAMID_FACTOR = 0.709
# Longer image side above which detection runs on a downscaled copy.
MAX_SIDE = 1280
CELL = 12          # P-Net window side, and the smallest image side the cascade can use
CELL_STRIDE = 2
RNET_SIDE, ONET_SIDE, LNET_SIDE = 24, 48, 24
# L-Net patch side relative to the face box, and its largest trusted move (in patch sides).
LNET_PATCH = 0.25
LNET_MAX_MOVE = 0.35
NMS_WITHIN_SCALE = 0.5
NMS_ACROSS_SCALES = 0.7
NMS_RNET = 0.7
NMS_ONET = 0.7
# R-Net and O-Net batch sizes that get an executor (a batch is zero-padded up to the next one,
# wasting at most a third of the work) and the largest, beyond which candidates run in chunks.
BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
MAX_BATCH = {'rnet': 256, 'onet': 64, 'lnet': 64}
PNET_CACHE = 32


def normalise(images_hwc):
    """(N, H, W, 3) BGR pixels -> (N, 3, H, W) float32 (pixel - 127.5) / 128."""
    batch = (np.asarray(images_hwc, dtype=np.float32) - 127.5) * 0.0078125
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def pyramid_scales(height, width, min_size=MIN_SIZE, factor=PYRAMID_FACTOR):
    """The P-Net scales: (12 / min_size) * factor^k while min(height, width) * scale >= 12."""
    scales = []
    scale = CELL / float(min_size)
    while min(height, width) * scale >= CELL:
        scales.append(scale)
        scale *= factor
    return scales


def window_boxes(prob, reg, scale, threshold):
    """P-Net cells scoring > threshold as (boxes (K, 4), scores (K,), regressions (K, 4)) in
    the coordinates of the unscaled image: cell (row, col) is the 12 x 12 window at
    (2 col + 1, 2 row + 1) of the scaled image, rounded as the published port does."""
    rows, cols = np.nonzero(prob > threshold)
    x1 = np.round((CELL_STRIDE * cols + 1) / scale)
    y1 = np.round((CELL_STRIDE * rows + 1) / scale)
    x2 = np.round((CELL_STRIDE * cols + 1 + CELL) / scale)
    y2 = np.round((CELL_STRIDE * rows + 1 + CELL) / scale)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float64)
    return boxes, prob[rows, cols].astype(np.float64), reg[:, rows, cols].T.astype(np.float64)


def calibrate(boxes, reg):
    """Boxes moved by their regression, in units of the box width and height."""
    widths, heights = box_sizes(boxes)
    return boxes + reg * np.stack([widths, heights, widths, heights], axis=1)


def square(boxes):
    """Squares of side max(w, h) on the boxes' centres, corners rounded to whole pixels."""
    widths, heights = box_sizes(boxes)
    sides = np.maximum(widths, heights)
    x1 = boxes[:, 0] + 0.5 * widths - 0.5 * sides
    y1 = boxes[:, 1] + 0.5 * heights - 0.5 * sides
    return np.round(np.stack([x1, y1, x1 + sides - 1.0, y1 + sides - 1.0], axis=1))


def resize(image, width, height):
    """cv2.resize to (width, height): pixel-area averaging when shrinking, bilinear else.

    The authors' MATLAB code resamples with Piotr Dollar's imResample, which averages when
    it shrinks; the published MXNet port's plain bilinear resize found fewer faces (285 of
    288 300-W training crops against 287) and misses the Einstein fixture photo."""
    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def cut(image, box, side, dtype):
    """The integer box (x1, y1, x2, y2) of image, zero outside it, resized to side x side."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1)
    if sx2 < sx1 or sy2 < sy1:
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=image.dtype)
    else:
        patch = cv2.copyMakeBorder(image[sy1:sy2 + 1, sx1:sx2 + 1], sy1 - y1, y2 - sy2,
                                   sx1 - x1, x2 - sx2, cv2.BORDER_CONSTANT, value=0)
    return resize(patch.astype(dtype, copy=False), side, side)


def cuttable(boxes):
    """The boxes at least one pixel wide and high (a degenerate regression can invert one)."""
    return boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]


def bucket_size(count, limit):
    """The smallest batch size of BUCKETS (capped at limit) that holds count rows."""
    for size in BUCKETS:
        if size >= min(count, limit):
            return min(size, limit)
    return limit


def _score_cuts(name, cuts):
    cuts = tuple(float(cut) for cut in cuts)
    if len(cuts) != 3 or not all(0.0 <= cut <= 1.0 for cut in cuts):
        raise ValueError('%s must be three scores in [0, 1] (P-, R-, O-Net), got %s'
                         % (name, cuts))
    return cuts


class MTCNNDetector:
    """MTCNN with the bundled weights: `.detect(image_bgr, threshold=None) -> [Face]`, best
    first, each with a box, the O-Net score and five points (left eye, right eye, nose, left
    and right mouth corner; left/right as seen in the image, the order of
    data.landmarks.five_points and the alignment template).

    model_dir: folder of det1..det4-0001.params (default the bundled models/mtcnn; det4 only
    with refine_points);
    ctx: MXNet context (default the CPU; a GPU only when passed); min_size: smallest face
    side searched, in pixels of the image the cascade runs on; thresholds: P-, R-, O-Net
    score cuts; retry_thresholds, retry_min_size: the cuts and the smallest face side of a
    second search of an image in which the first finds no face (retry_thresholds None: no
    second search; it never looks for faces smaller than min_size); max_side: images whose
    longer side exceeds it are detected on a copy downscaled to that side (boxes and points
    are mapped back; min_size then counts in the copy's pixels), None to never downscale;
    refine_points: move the five points with L-Net (det4; more accurate points, about one
    more R-Net-sized forward per face).
    """
    name = 'mtcnn'

    def __init__(self, model_dir=MODEL_DIR, ctx=None, min_size=MIN_SIZE, thresholds=THRESHOLDS,
                 retry_thresholds=RETRY_THRESHOLDS, retry_min_size=RETRY_MIN_SIZE,
                 max_side=MAX_SIDE, refine_points=True):
        thresholds = _score_cuts('thresholds', thresholds)
        if retry_thresholds is not None:
            retry_thresholds = _score_cuts('retry_thresholds', retry_thresholds)
        for name, size in (('min_size', min_size), ('retry_min_size', retry_min_size)):
            if not size > 0:
                raise ValueError('%s must be positive, got %r' % (name, size))
        if max_side is not None and max_side < CELL:
            raise ValueError('max_side must be at least %d px or None, got %r' % (CELL, max_side))
        self.min_size = float(min_size)
        self.thresholds = thresholds
        self.retry_thresholds = retry_thresholds
        self.retry_min_size = float(retry_min_size)
        self.max_side = max_side
        self.refine_points = bool(refine_points)
        self.ctx = default_context() if ctx is None else ctx
        self._nets = {}
        for net in ('pnet', 'rnet', 'onet') + (('lnet',) if self.refine_points else ()):
            symbol, arg_params = load_net(model_dir, net)
            self._nets[net] = (symbol, {name: value.as_in_context(self.ctx)
                                        for name, value in arg_params.items()})
        self._executors = {}
        self._pnet_executors = collections.OrderedDict()

    # Executors ----------------------------------------------------------------------------

    def _bind(self, net, data_shape):
        symbol, params = self._nets[net]
        args = dict(params, data=mx.nd.zeros(data_shape, ctx=self.ctx))
        return symbol.bind(self.ctx, args=args, grad_req='null')

    def _run(self, executor, batch):
        executor.arg_dict['data'][:] = batch
        return [out.asnumpy() for out in executor.forward(is_train=False)]

    def _pnet(self, batch):
        shape = batch.shape
        executor = self._pnet_executors.pop(shape, None)
        if executor is None:
            executor = self._bind('pnet', shape)
            if len(self._pnet_executors) >= PNET_CACHE:
                self._pnet_executors.popitem(last=False)
        self._pnet_executors[shape] = executor
        return self._run(executor, batch)

    def _batched(self, net, batch):
        """One net's outputs for every row of batch, in buckets of bound batch sizes."""
        limit = MAX_BATCH[net]
        chunks = []
        for start in range(0, len(batch), limit):
            chunk = batch[start:start + limit]
            size = bucket_size(len(chunk), limit)
            executor = self._executors.get((net, size))
            if executor is None:
                executor = self._executors[(net, size)] = self._bind(
                    net, (size,) + chunk.shape[1:])
            padded = np.zeros((size,) + chunk.shape[1:], dtype=np.float32)
            padded[:len(chunk)] = chunk
            chunks.append([out[:len(chunk)] for out in self._run(executor, padded)])
        return [np.concatenate(parts) for parts in zip(*chunks)]

    # The cascade --------------------------------------------------------------------------

    def _proposals(self, image, cut_score, min_size):
        """Stage 1: squared, rounded candidate boxes (K, 4) from P-Net over the pyramid."""
        height, width = image.shape[:2]
        found = []
        for scale in pyramid_scales(height, width, min_size):
            scaled = resize(image, int(math.ceil(width * scale)), int(math.ceil(height * scale)))
            prob, reg = self._pnet(normalise(scaled[None]))
            boxes, scores, regs = window_boxes(prob[0, 1], reg[0], scale, cut_score)
            keep = nms(boxes, scores, NMS_WITHIN_SCALE, 'union')
            found.append((boxes[keep], scores[keep], regs[keep]))
        if not found:
            return np.zeros((0, 4))
        boxes, scores, regs = (np.concatenate(parts) for parts in zip(*found))
        keep = nms(boxes, scores, NMS_ACROSS_SCALES, 'union')
        return square(calibrate(boxes[keep], regs[keep]))

    def _cuts(self, image, boxes, side, dtype):
        return normalise(np.stack([cut(image, box, side, dtype) for box in boxes]))

    def _refine(self, image, boxes, cut_score):
        """Stage 2: R-Net on every candidate; squared, rounded boxes (K, 4)."""
        prob, reg = self._batched('rnet', self._cuts(image, boxes, RNET_SIDE, np.uint8))
        passed = np.flatnonzero(prob[:, 1] > cut_score)
        boxes, scores, reg = boxes[passed], prob[passed, 1], reg[passed]
        keep = nms(boxes, scores, NMS_RNET, 'union')
        return square(calibrate(boxes[keep], reg[keep]))

    def _output(self, image, boxes, cut_score):
        """Stage 3: O-Net; (boxes (N, 4), scores (N,), points (N, 5, 2)), best first."""
        prob, reg, marks = self._batched('onet', self._cuts(image, boxes, ONET_SIDE,
                                                             np.float32))
        passed = np.flatnonzero(prob[:, 1] > cut_score)
        boxes, scores, reg, marks = boxes[passed], prob[passed, 1], reg[passed], marks[passed]
        widths, heights = box_sizes(boxes)
        points = np.stack([boxes[:, 0:1] + widths[:, None] * marks[:, 0:5],
                           boxes[:, 1:2] + heights[:, None] * marks[:, 5:10]], axis=2)
        boxes = calibrate(boxes, reg)
        keep = nms(boxes, scores, NMS_ONET, 'min')
        return boxes[keep], scores[keep].astype(np.float64), points[keep]

    def _points(self, image, boxes, points):
        """Stage 4: the five points (N, 5, 2) moved by L-Net."""
        sides = np.round(LNET_PATCH * np.maximum(*box_sizes(boxes)))
        sides = np.maximum(sides + sides % 2, 2.0)          # even, as the published port
        corners = np.round(points - 0.5 * sides[:, None, None])
        patches = np.concatenate(
            [self._cuts(image, np.concatenate([corners[:, k], corners[:, k]
                                               + sides[:, None] - 1.0], axis=1),
                        LNET_SIDE, np.float32) for k in range(NUM_POINTS)], axis=1)
        moves = np.stack(self._batched('lnet', patches), axis=1)     # (N, 5, 2)
        untrusted = (np.abs(moves - 0.5) > LNET_MAX_MOVE).any(axis=2)
        moves[untrusted] = 0.5
        return corners + moves * sides[:, None, None]

    def _cascade(self, image, thresholds, min_size):
        """(boxes (N, 4), scores (N,), points (N, 5, 2)) of the stages, best first, with the
        stages' score cuts `thresholds`, for faces down to `min_size` px."""
        boxes = cuttable(self._proposals(image, thresholds[0], min_size))
        if len(boxes):
            boxes = cuttable(self._refine(image, boxes, thresholds[1]))
        if len(boxes) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, NUM_POINTS, 2))
        boxes, scores, points = self._output(image, boxes, thresholds[2])
        logger.debug('mtcnn: %d faces', len(boxes))
        if self.refine_points and len(boxes):
            points = self._points(image, boxes, points)
        return boxes, scores, points

    def detect(self, image_bgr, threshold=None):
        """Faces of one image, best first: a list of essh.Face with points (5, 2).

        image_bgr: anything data.images.to_bgr8 takes (grey, BGR, BGRA; 8/16-bit or float).
        Images with a side under 12 px give [].

        When the cascade finds nothing at `thresholds`, it searches again at
        `retry_thresholds` for faces of at least `retry_min_size` px: a face missed at the
        strict cuts, often one turned far aside, is found, while an image with a clear face is
        answered as before. The larger smallest face keeps the looser cuts from firing on
        small patches of texture.

        `threshold` (the ESSH-style detection threshold callers such as FaceAligner pass,
        0.4 by default there) never loosens the cascade: a face is kept when its O-Net score
        passes the cascade's cut (thresholds[2], 0.8 by default, or retry_thresholds[2] on
        the second search) and is >= threshold, so 0.4 changes nothing and a higher value
        makes the final cut stricter. To loosen MTCNN, give lower `thresholds` to the
        constructor.
        """
        image = to_bgr8(image_bgr)
        height, width = image.shape[:2]
        if min(height, width) < CELL:
            return []
        scale_x = scale_y = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            factor = self.max_side / float(max(height, width))
            size = (max(1, int(round(width * factor))), max(1, int(round(height * factor))))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / float(width), size[1] / float(height)
            if min(image.shape[:2]) < CELL:
                return []
        boxes, scores, points = self._cascade(image, self.thresholds, self.min_size)
        if len(boxes) == 0 and self.retry_thresholds is not None:
            boxes, scores, points = self._cascade(image, self.retry_thresholds,
                                                  max(self.min_size, self.retry_min_size))
        if threshold is not None:
            passing = scores >= threshold
            boxes, scores, points = boxes[passing], scores[passing], points[passing]
        if scale_x != 1.0 or scale_y != 1.0:
            # Pixel centres: x in the copy is (x + 0.5) * scale - 0.5 in cv2.resize's grid.
            boxes = (boxes + 0.5) / np.array([scale_x, scale_y, scale_x, scale_y]) - 0.5
            points = (points + 0.5) / np.array([scale_x, scale_y]) - 0.5
        return faces_from_arrays(boxes, scores, points)
