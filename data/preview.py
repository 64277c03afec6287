"""Contact sheets of records and their training crops, to check labels and augmentation by eye.

Each landmark group (jaw, brows, nose, eyes, mouth) has its own colour, so a flip that forgot to
renumber the points shows as a group drawn on the wrong side of the face.
"""
import math

import cv2
import numpy as np

from fileio import atomic_write

from .iterator import FaceSegIter
from .landmarks import CONTOURS
from .recordio import unpack_record
from .records import RecordFile

TILE = 192
# BGR colour per CONTOURS entry.
GROUP_COLOURS = [(255, 255, 255), (0, 200, 255), (255, 200, 0), (0, 255, 255), (255, 0, 255),
                 (0, 255, 0), (255, 0, 0), (0, 0, 255), (128, 128, 255)]


def draw_landmarks(image_bgr, points_xy):
    """A copy of the image with the 68 landmarks drawn as coloured contours."""
    canvas = image_bgr.copy()
    for (first, last, closed), colour in zip(CONTOURS, GROUP_COLOURS):
        line = np.round(points_xy[first:last + 1]).astype(np.int32)
        cv2.polylines(canvas, [line], closed, colour, 1, cv2.LINE_AA)
        for x, y in line:
            cv2.circle(canvas, (int(x), int(y)), 1, colour, -1, cv2.LINE_AA)
    return canvas


def _tile(image_bgr, points_xy, caption):
    scale = TILE / float(image_bgr.shape[1])
    tile = cv2.resize(draw_landmarks(cv2.resize(image_bgr, (TILE, TILE)), points_xy * scale),
                      (TILE, TILE))
    cv2.putText(tile, caption, (4, TILE - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def _describe(transform):
    """'rot 12 side 240 flip' from a record -> crop map (side in record pixels)."""
    linear = transform[:, :2]
    flipped = np.linalg.det(linear) < 0
    if flipped:
        linear = linear * [[-1.0], [1.0]]
    angle = math.degrees(math.atan2(linear[1, 0], linear[0, 0]))
    side = 128.0 / math.hypot(linear[0, 0], linear[1, 0])
    return 'rot %d side %d%s' % (round(angle), round(side), ' flip' if flipped else '')


def augmentation_sheet(rec_path, cfg, count=8, seed=0, aug_level=1):
    """BGR image: the first `count` records (top row of each pair of rows) above the crops the
    iterator makes of them with `seed` (bottom row), 8 records per row (fewer when the file
    has fewer records). ValueError naming the file when no record of it can be read."""
    if count < 1:
        raise ValueError('count must be >= 1, got %d' % count)
    # The count is the iterator's batch size, which it allocates up front.
    count = min(count, len(RecordFile(rec_path)))
    iterator = FaceSegIter(rec_path, count, cfg, aug_level=aug_level, shuffle=False,
                           num_workers=0, seed=seed)
    try:
        batch = iterator.next()
    except StopIteration:
        iterator.close()
        if iterator.skipped:   # the reason names the file
            raise ValueError('none of the %d records could be read: %s'
                             % (len(iterator.keys), iterator.skipped[0][1])) from None
        raise ValueError('%s: the landmarks of every record left their crops'
                         % iterator.records.rec_path) from None
    kept = len(batch.index) - batch.pad
    crops = batch.data[0].asnumpy()[:kept].transpose(0, 2, 3, 1).astype(np.uint8)
    offsets = dict(zip(iterator.records.keys, iterator.records.offsets))
    record_tiles, crop_tiles = [], []
    for key, crop, points, transform in zip(batch.index[:kept], crops, batch.points,
                                            batch.transforms):
        image, record_points, _ = unpack_record(iterator.records.read(offsets[key]),
                                                cfg['label_xfirst'])
        record_tiles.append(_tile(image, record_points, 'record %d' % key))
        crop_tiles.append(_tile(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), points,
                                _describe(transform)))
    iterator.close()
    rows = []
    for start in range(0, kept, 8):
        blank = np.zeros((TILE, TILE, 3), np.uint8)
        pad = [blank] * (8 - len(record_tiles[start:start + 8])) if kept > 8 else []
        rows.append(np.hstack(record_tiles[start:start + 8] + pad))
        rows.append(np.hstack(crop_tiles[start:start + 8] + pad))
    return np.vstack(rows)


def save_png(path, image_bgr):
    """Write a PNG atomically (temporary file, then rename)."""
    ok, encoded = cv2.imencode('.png', image_bgr)
    if not ok:
        raise ValueError('%s: cannot encode the image as PNG' % path)

    def write(tmp_path):
        with open(tmp_path, 'wb') as handle:
            handle.write(encoded.tobytes())
    atomic_write(path, write)
