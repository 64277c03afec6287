"""Packing annotated face images into the toolkit's RecordIO data sets (docs/data-format.md §4).

Record convention (`data.geometry.record_transform`, docs/data-format.md). A record holds the
face exactly as the evaluation protocol crops it, at twice the size and with context around
it, so the training crop at scale ratio 1 and no rotation is the protocol crop of that face
and a network is trained on the geometry it is evaluated on. (A first version stored the
template alignment alone: the protocol box then sat about 5 crop pixels lower and 6-11% larger than in
training crops, and a 300-W model's NME on protocol crops was twice that on training-style crops of the same faces.)
`top_shift` defaults to the shift `FaceSegIter` validates this toolkit's own splits with
(`DEFAULT_TOP_SHIFT`); pack with a test set's shift (40 for 300W) to train for that protocol.
Rotation is removed by the alignment; training augmentation adds it back (docs/data-format.md §5).
"""
import collections
import contextlib
import functools
import os
import random
import time

import cv2
import numpy as np

from console import progress

from .geometry import BASE_SCALE, DEFAULT_TOP_SHIFT, RECORD_SIZE, make_record
from .images import read_image
from .readers import (read_aflw2000_points, read_aflw2000_pose, read_cofw68_points,
                      read_cofw_images, read_pts)
from .recordio import SIDECAR_SUFFIX, RecordWriter

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')

# One packable face: `name` (what list files and splits use), `path` (its annotation file,
# named in messages), `load()` -> (BGR image, (68, 2) x/y points), or ValueError, and
# `facts()` -> dict of extra per-face facts for the split's sidecar (e.g. head pose), or None.
Sample = collections.namedtuple('Sample', 'name path load facts', defaults=(None,))


def _inside(points, width, height):
    # A point is inside when it lies on some pixel: centres are at 0..size-1, so the pixel
    # area spans [-0.5, size - 0.5).
    return bool(np.all((points >= -0.5) & (points < np.array([width, height]) - 0.5)))


def leaves_image(points_xy, image_bgr):
    """True when some point lies off the image's pixels."""
    height, width = image_bgr.shape[:2]
    return not _inside(np.asarray(points_xy, dtype=np.float64), width, height)


def checked_record(name, image_bgr, points_xy, record_size=RECORD_SIZE, base_scale=BASE_SCALE,
                   keep_outside_image=False, top_shift=DEFAULT_TOP_SHIFT):
    """make_record, refusing (ValueError naming `name`) a face whose points are not finite,
    leave the source image (unless `keep_outside_image`) or leave the record."""
    points = np.asarray(points_xy, dtype=np.float64)
    if not np.all(np.isfinite(points)):
        raise ValueError('%s: points are not finite' % name)
    if not keep_outside_image and leaves_image(points, image_bgr):
        height, width = image_bgr.shape[:2]
        raise ValueError('%s: points lie outside the %dx%d image' % (name, width, height))
    record, record_points = make_record(image_bgr, points, record_size, base_scale, top_shift)
    if not _inside(record_points, record_size, record_size):
        raise ValueError('%s: points fall outside the %d px record' % (name, record_size))
    return record, record_points


class PackSummary:
    """What a packing run did: records per split, skipped samples with reasons, faces kept
    with points off their image (`--keep-outside-image`), listed names that were not found,
    and the files written."""

    def __init__(self):
        self.written = collections.Counter()
        self.paths = {}
        self.skipped = []
        self.outside_image = []   # names of packed faces whose points leave the source image
        self.missing = []
        self.removed = []   # stale split files of an earlier run into the same folder
        self.seconds = 0.0

    def __str__(self):
        lines = ['packed %d faces in %.1f s' % (sum(self.written.values()), self.seconds)]
        lines += ['  %-14s %6d  %s' % (split, self.written[split], self.paths[split])
                  for split in sorted(self.written)]
        if self.outside_image:
            lines.append('kept %d face(s) with points outside their image: %s'
                         % (len(self.outside_image), ' '.join(self.outside_image)))
        if self.skipped:
            lines.append('skipped %d:' % len(self.skipped))
            lines += ['  %s' % reason for _, reason in self.skipped]
        if self.missing:
            lines.append('listed but not found %d: %s' % (len(self.missing),
                                                           ' '.join(self.missing)))
        if self.removed:
            lines.append('removed stale splits of an earlier run (their faces may now be in '
                         'another split): %s' % ' '.join(self.removed))
        return '\n'.join(lines)


def read_list(path):
    """A list file (one sample name per line; blank lines ignored) -> list of names; ValueError
    when it names none (an empty list would silently send every sample to train)."""
    try:
        with open(path) as handle:
            names = [line.strip() for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError('%s: cannot read list file (%s)' % (path, err)) from None
    if not names:
        raise ValueError('%s: list file names no samples' % path)
    return names


def check_split_name(name, what='split name'):
    """ValueError unless `name` is a plain file name: a split is written as
    `<out_dir>/<name>.rec`, which must not land outside `out_dir`."""
    if name is not None and (not name or name in ('.', '..') or os.path.basename(name) != name
                             or (os.altsep and os.altsep in name)):
        raise ValueError('%s %r must be a plain file name, without folders' % (what, name))


def assign_splits(names, default_split, listed=None, val_fraction=0.0, seed=0, split=None):
    """Name -> split name for every sample to pack.

    - `split` given: everything (or only the `listed` names) goes into that one split.
    - `listed` alone: the listed names form `val`, the others `train`.
    - `val_fraction` > 0: a seeded random fraction (at least one, never all) forms `val`.
    - otherwise everything goes into `default_split`.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError('val fraction must be in [0, 1), got %g' % val_fraction)
    if val_fraction and (listed is not None or split):
        raise ValueError('val_fraction %g cannot be combined with %s: it draws the val split '
                         'itself' % (val_fraction, 'a named split' if split else 'listed names'))
    names = sorted(names)
    if split:
        chosen = names if listed is None else sorted(set(names) & set(listed))
        return {name: split for name in chosen}
    if listed is not None:
        held_out = set(listed)
        return {name: 'val' if name in held_out else 'train' for name in names}
    if val_fraction:
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        num_val = min(max(1, int(round(val_fraction * len(names)))), len(names) - 1)
        held_out = set(shuffled[:num_val])
        return {name: 'val' if name in held_out else 'train' for name in names}
    return {name: default_split for name in names}


def pack_samples(samples, out_dir, default_split, *, list_file=None, val_fraction=0.0, seed=0,
                 split=None, quality=95, record_size=RECORD_SIZE, base_scale=BASE_SCALE,
                 keep_outside_image=False, top_shift=DEFAULT_TOP_SHIFT, source=''):
    """Write `samples` to `<out_dir>/<split>.rec` + `.idx` per split; returns a PackSummary.

    Splits follow `assign_splits` (`list_file`: one sample name per line). A sample that fails
    to load or to fit a record is skipped and listed in the summary; the run fails (ValueError)
    only when no sample at all could be packed, and then leaves no files. Each split gets a
    sidecar (`data.recordio.read_sidecar`): per record its sample name and the sample's
    `facts()`; for the split, the count of faces kept with points off their image and the top
    shift of its layout (`data.recordio.packed_top_shift`).
    """
    check_split_name(split)
    started = time.time()
    summary = PackSummary()
    by_name = {sample.name: sample for sample in samples}
    listed = read_list(list_file) if list_file else None
    if listed is not None:
        summary.missing = [name for name in listed if name not in by_name]
    split_of = assign_splits(by_name, default_split, listed, val_fraction, seed, split)
    with contextlib.ExitStack() as stack:
        writers = {}
        for name in progress(sorted(split_of), desc='packing %s' % (source or out_dir),
                             unit='face'):
            sample = by_name[name]
            try:
                image, points = sample.load()
                record, record_points = checked_record(sample.path, image, points,
                                                       record_size, base_scale,
                                                       keep_outside_image, top_shift)
                facts = dict(name=name, **(sample.facts() if sample.facts else {}))
            except (ValueError, cv2.error) as err:
                summary.skipped.append((name, str(err).strip().splitlines()[0]))
                continue
            facts['outside_image'] = leaves_image(points, image)
            if facts['outside_image']:
                summary.outside_image.append(name)
            target = split_of[name]
            if target not in writers:
                writers[target] = stack.enter_context(
                    RecordWriter(os.path.join(out_dir, target), quality=quality))
                writers[target].about = {'source': source or '', 'outside_image': 0,
                                         'top_shift': top_shift}
                summary.paths[target] = writers[target].rec_path
            writers[target].write(record, record_points, facts)
            writers[target].about['outside_image'] += facts['outside_image']
            summary.written[target] += 1
        if not writers:
            first = summary.skipped[0][1] if summary.skipped else 'nothing selected'
            raise ValueError('%s: no sample could be packed (%d skipped; first: %s)'
                             % (source or out_dir, len(summary.skipped), first))
    owned = owned_splits(default_split, split, listed is not None or bool(val_fraction))
    summary.removed = remove_stale_splits(out_dir, owned, summary.paths)
    summary.seconds = time.time() - started
    return summary


def owned_splits(default_split, split=None, held_out=False):
    """The split names one packing run decides: the named split; or the default split, and
    with it `val` whenever that run is a train/val split (default `train`, or a hold-out)."""
    if split:
        return {split}
    if held_out or default_split == 'train':
        return {default_split, 'train', 'val'}
    return {default_split}


def remove_stale_splits(out_dir, owned, written):
    """Delete `<split>.rec/.idx` files in `out_dir` of the `owned` splits this run did not
    write: an earlier run's held-out faces that this run may have packed into another split
    (test data leaking into training). Returns the removed paths."""
    removed = []
    for split in sorted(set(owned) - set(written)):
        for path in (os.path.join(out_dir, split + ext)
                     for ext in ('.rec', '.idx', SIDECAR_SUFFIX)):
            if os.path.exists(path):
                os.remove(path)
                removed.append(path)
    return removed


def _files_by_stem(folder, extensions):
    if not os.path.isdir(folder):
        raise ValueError('%s: not a folder' % folder)
    found = {}
    for entry in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(entry)
        if ext.lower() in extensions:
            found.setdefault(stem, os.path.join(folder, entry))
    return found


def _load_from_files(annotation_path, read_points, image_files, image_stem):
    points = read_points(annotation_path)
    if image_stem not in image_files:
        raise ValueError('%s: no image named %s.*' % (annotation_path, image_stem))
    return read_image(image_files[image_stem]), points


def _pack_folder(folder, annotation_extension, read_points, out_dir, default_split,
                 read_facts=None, **options):
    annotations = _files_by_stem(folder, (annotation_extension,))
    if not annotations:
        raise ValueError('no %s files found in %s' % (annotation_extension, folder))
    image_files = _files_by_stem(folder, IMAGE_EXTENSIONS)
    samples = [Sample(stem, path, functools.partial(_load_from_files, path, read_points,
                                                    image_files, stem),
                      read_facts and functools.partial(read_facts, path))
               for stem, path in annotations.items()]
    return pack_samples(samples, out_dir, default_split, source=folder, **options)


def pack_pts_folder(folder, out_dir, **options):
    """Pack a 300-W / HELEN / LFPW / AFW / iBUG / menpo style folder (`<stem>.pts` + image);
    default split `train`. `options`: those of `pack_samples`."""
    return _pack_folder(folder, '.pts', read_pts, out_dir, 'train', **options)


def pack_aflw2000(folder, out_dir, **options):
    """Pack AFLW2000-3D (`<stem>.jpg` + `<stem>.mat` with `pt3d_68` and `Pose_Para`); default
    split `AFLW2000-3D`; the labels are the 2D projection of the 3D points, and the sidecar
    keeps each face's pitch, yaw and roll (degrees) for NME by yaw. A `.mat` without either
    variable, or with non-finite values, is skipped with its reason."""
    return _pack_folder(folder, '.mat', read_aflw2000_points, out_dir, 'AFLW2000-3D',
                        read_facts=read_aflw2000_pose, **options)


# cofw68-benchmark names its annotations `<n>_points.mat` for COFW test image n.
COFW_POINTS_SUFFIX = '_points'


def _cofw_image_stem(stem):
    return stem[:-len(COFW_POINTS_SUFFIX)] if stem.endswith(COFW_POINTS_SUFFIX) else stem


def _read_cofw_points(path):
    return read_pts(path) if path.lower().endswith('.pts') else read_cofw68_points(path)


def _load_from_cofw_mat(annotation_path, cofw_images, mat_path):
    points = _read_cofw_points(annotation_path)
    number = _cofw_image_stem(os.path.splitext(os.path.basename(annotation_path))[0])
    if not number.isdigit() or int(number) < 1:
        raise ValueError('%s: with %s the annotations must be named <n>.pts or '
                         '<n>_points.mat' % (annotation_path, mat_path))
    if int(number) > len(cofw_images):
        raise ValueError('%s: %s holds only %d images' % (annotation_path, mat_path,
                                                          len(cofw_images)))
    return cofw_images[int(number) - 1], points


def pack_cofw(annotations, images, out_dir, **options):
    """Pack COFW-68 test faces; default split `cofw_testset`. `options`: those of
    `pack_samples`.

    `annotations`: a folder of `.pts` files or of cofw68-benchmark `<n>_points.mat` files
    (variable `Points`). `images`: a folder of images named like the annotations (`<n>.<ext>`
    for `<n>_points.mat`), or the original `COFW_test_color.mat`, whose n-th image (1-based,
    cell array `IsT`) belongs to annotation `<n>.pts` / `<n>_points.mat`.
    """
    found = _files_by_stem(annotations, ('.pts', '.mat'))
    if os.path.isdir(images):
        image_files = _files_by_stem(images, IMAGE_EXTENSIONS)
        samples = [Sample(stem, path, functools.partial(_load_from_files, path,
                                                        _read_cofw_points, image_files,
                                                        _cofw_image_stem(stem)))
                   for stem, path in found.items()]
    else:
        cofw_images = read_cofw_images(images)
        samples = [Sample(stem, path, functools.partial(_load_from_cofw_mat, path, cofw_images,
                                                        images))
                   for stem, path in found.items()]
    return pack_samples(samples, out_dir, 'cofw_testset', source=annotations, **options)
