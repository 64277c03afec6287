"""The RecordIO data-set format of the original toolkit.

A split is `<name>.rec` + `<name>.idx`, written with `mx.recordio.pack_img`: a JPEG record
image (384 x 384, face centred at scale 256) whose `header.label` holds 136 floats, the 68
points as (y, x) pairs in record-image pixels (`label_xfirst=False`).
"""
import json
import os

import mxnet as mx
import numpy as np

from fileio import write_json_atomic

from .geometry import DEFAULT_TOP_SHIFT, TOP_SHIFT
from .landmarks import NUM_LANDMARKS

# Per-record facts a label of 136 floats cannot hold (source name, head pose) live in a JSON
# sidecar next to the .rec, so released .rec files and every reader of them stay unchanged.
SIDECAR_SUFFIX = '.meta.json'


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


def sidecar_path(prefix):
    """`path/name` or `path/name.rec` -> `path/name.meta.json`, the split's record sidecar."""
    return split_paths(prefix)[1][:-4] + SIDECAR_SUFFIX


def _sidecar_fact(rec_path, read):
    """`read(the sidecar's JSON object)` for the sidecar next to `rec_path`, or None when there
    is none (released data sets have none); ValueError naming the file when it is not a
    sidecar or `read` finds it malformed."""
    path = sidecar_path(rec_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return read(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError('%s: not a record sidecar (%s)' % (path, err)) from None


def read_sidecar(rec_path):
    """Record index -> dict of that record's facts (e.g. `name`, `yaw` in degrees) from the
    sidecar next to `rec_path`; {} when there is none.
    ValueError naming the file when it exists but is not a sidecar."""
    def records(sidecar):
        return {int(key): dict(value) for key, value in sidecar['records'].items()}
    return _sidecar_fact(rec_path, records) or {}


def packed_top_shift(rec_path):
    """The box top shift `rec_path`'s records were laid out with, as pack_rec.py records it
    in the sidecar; None when there is no sidecar or it predates that fact (released data
    sets, older packs). ValueError naming the file when the sidecar is damaged."""
    def top_shift(sidecar):
        shift = sidecar.get('top_shift')
        if shift is not None and (isinstance(shift, bool) or not isinstance(shift, int)
                                  or shift < 0):
            raise ValueError('top_shift is %r, not a pixel count' % (shift,))
        return shift
    return _sidecar_fact(rec_path, top_shift)


def top_shift_for(rec_path, preset=None):
    """The box top shift of a `.rec`: the one its records were packed with (sidecar), else
    `preset`, else the preset of its base name (data.geometry.TOP_SHIFT; 30 for other
    names)."""
    shift = packed_top_shift(rec_path)
    if shift is not None:
        return shift
    if preset is not None:
        return preset
    name = os.path.splitext(os.path.basename(rec_path))[0]
    return TOP_SHIFT.get(name, DEFAULT_TOP_SHIFT)


class RecordWriter:
    """Writes records to `<prefix>.rec` + `.idx`; both appear only when `close()` succeeds,
    so an interrupted write never leaves a half data set under the final name. Facts passed
    as `write(..., facts=dict)` go to the sidecar `<prefix>.meta.json`, keyed by record index
    (with `about`, a dict of split-wide facts); without any, a stale sidecar is removed."""

    def __init__(self, prefix, quality=95, label_xfirst=False):
        self.idx_path, self.rec_path = split_paths(prefix)
        os.makedirs(os.path.dirname(os.path.abspath(self.rec_path)), exist_ok=True)
        # Per-process temporary names, so two writers aimed at one prefix cannot interleave.
        suffix = '.%d.tmp' % os.getpid()
        self._tmp_idx, self._tmp_rec = self.idx_path + suffix, self.rec_path + suffix
        self._writer = mx.recordio.MXIndexedRecordIO(self._tmp_idx, self._tmp_rec, 'w')
        self.quality, self.label_xfirst = quality, label_xfirst
        self.count = 0
        self.sidecar_path = sidecar_path(self.rec_path)
        self.facts = {}
        self.about = {}

    def write(self, image_bgr, points_xy, facts=None):
        self._writer.write_idx(self.count, pack_record(image_bgr, points_xy, self.count,
                                                       self.quality, self.label_xfirst))
        if facts:
            self.facts[str(self.count)] = facts
        self.count += 1

    def close(self):
        self._writer.close()
        os.replace(self._tmp_rec, self.rec_path)
        os.replace(self._tmp_idx, self.idx_path)
        if self.facts:
            write_json_atomic(self.sidecar_path, dict(self.about, records=self.facts))
        elif os.path.exists(self.sidecar_path):
            os.remove(self.sidecar_path)

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
