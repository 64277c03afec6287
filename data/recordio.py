"""The RecordIO data-set format of the original toolkit.

A split is `<name>.rec` + `<name>.idx`, written with `mx.recordio.pack_img`: a JPEG record
image (384 x 384, face centred at scale 256) whose `header.label` holds 136 floats, the 68
points as (y, x) pairs in record-image pixels (`label_xfirst=False`).
"""
import os

import mxnet as mx
import numpy as np

from .landmarks import NUM_LANDMARKS


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and record id."""


def points_to_label(points_xy, label_xfirst=False):
    """(68, 2) x/y points -> the flat 136-float label stored in a record."""
    pts = np.asarray(points_xy, dtype=np.float32).reshape(-1, 2)
    if not label_xfirst:
        pts = pts[:, ::-1]
    return pts.reshape(-1)


def label_to_points(label, label_xfirst=False, num_points=NUM_LANDMARKS):
    """The flat label of a record -> (num_points, 2) x/y points (float32)."""
    label = np.asarray(label, dtype=np.float32).reshape(-1)
    if label.size != 2 * num_points:
        raise ValueError('label has %d values, expected %d' % (label.size, 2 * num_points))
    pts = label.reshape(num_points, 2)
    return pts if label_xfirst else pts[:, ::-1].copy()


def pack_record(image_bgr, points_xy, record_id, quality=95, label_xfirst=False):
    """Encode one record (BGR uint8 image, x/y points) as bytes."""
    header = mx.recordio.IRHeader(0, points_to_label(points_xy, label_xfirst), record_id, 0)
    return mx.recordio.pack_img(header, image_bgr, quality=quality, img_fmt='.jpg')


def unpack_record(payload, label_xfirst=False):
    """Decode record bytes -> (BGR uint8 image, (68, 2) x/y points, record id)."""
    header, image = mx.recordio.unpack_img(payload, iscolor=1)
    if image is None:
        raise ValueError('image does not decode')
    return image, label_to_points(header.label, label_xfirst), int(header.id)


def split_paths(prefix):
    """`path/name` or `path/name.rec` -> (`path/name.idx`, `path/name.rec`)."""
    if prefix.endswith('.rec'):
        prefix = prefix[:-4]
    return prefix + '.idx', prefix + '.rec'


class RecordWriter:
    """Writes records to `<prefix>.rec` + `.idx`; both appear only when `close()` succeeds,
    so an interrupted write never leaves a half data set under the final name."""

    def __init__(self, prefix, quality=95, label_xfirst=False):
        self.idx_path, self.rec_path = split_paths(prefix)
        os.makedirs(os.path.dirname(os.path.abspath(self.rec_path)), exist_ok=True)
        # Per-process temporary names, so two writers aimed at one prefix cannot interleave.
        suffix = '.%d.tmp' % os.getpid()
        self._tmp_idx, self._tmp_rec = self.idx_path + suffix, self.rec_path + suffix
        self._writer = mx.recordio.MXIndexedRecordIO(self._tmp_idx, self._tmp_rec, 'w')
        self.quality, self.label_xfirst = quality, label_xfirst
        self.count = 0

    def write(self, image_bgr, points_xy):
        self._writer.write_idx(self.count, pack_record(image_bgr, points_xy, self.count,
                                                       self.quality, self.label_xfirst))
        self.count += 1

    def close(self):
        self._writer.close()
        os.replace(self._tmp_rec, self.rec_path)
        os.replace(self._tmp_idx, self.idx_path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._writer.close()
            for path in (self._tmp_rec, self._tmp_idx):
                if os.path.exists(path):
                    os.remove(path)
