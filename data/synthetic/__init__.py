"""Built-in synthetic data set: photo-like rendered faces with 68 iBUG landmarks, packed as
the toolkit's RecordIO splits (docs/data-format.md), so demos, training runs and tests work
without any download.

Every face is drawn from its own RandomState seeded by (seed, split, index), so a split is the
same whatever the number of worker processes. The record crop is the real data sets' one
(`data.geometry.record_transform`, which aligns the five points eye centres, nose tip and
mouth corners). The '2d' and '3d' data sets of one seed draw the same faces, except that '2d'
keeps the yaw within MAX_YAW['2d'], and differ in the jaw labels.

The head model is data/synthetic/face.py, the renderer data/synthetic/render.py (with the
painted facial features in data/synthetic/features.py).
"""
import ctypes
import fcntl
import functools
import json
import os
import time
import zlib

import cv2
import numpy as np
from config import BASE
from console import progress as progress_bar
from fileio import atomic_write

from ..geometry import DEFAULT_TOP_SHIFT, record_transform, warp_points
from ..preview import draw_landmarks, save_png
from ..recordio import RecordWriter, split_paths
from ..workers import process_pool
from .face import YAW_LIMIT, labels_2d, labels_3d, make_head
from .render import Camera, render

SPLITS = ('train', 'val', 'test')
DEFAULT_COUNTS = {'train': 2000, 'val': 200, 'test': 200}
LANDMARK_TYPES = {'2d': labels_2d, '3d': labels_3d}
# Yaw range in degrees. '2d' imitates 300-W, whose faces are near-frontal and whose eye-centre
# NME breaks down towards profile (the eye distance shrinks to nothing); '3d' imitates
# AFLW2000-3D's large poses, scored with the box normaliser.
MAX_YAW = {'2d': 45.0, '3d': YAW_LIMIT}
RECORD_SIZE = BASE['record_img_size']
# The protocol-box top shift the records are laid out with (what evaluation crops them with).
RECORD_TOP_SHIFT = DEFAULT_TOP_SHIFT
# Landmarks must keep this far (px) from the record border; poses that break it are redrawn.
BORDER = 4.0
MAX_POSE_DRAWS = 20
LOCK_NAME = '.synthetic.lock'
# What made the splits in a folder; ensure_synthetic remakes splits that do not match it.
MANIFEST_NAME = 'synthetic.json'
# Bump whenever the generator's output changes, so data sets made by an older one are remade.
GENERATOR_VERSION = 5


def sample_rng(seed, split, index):
    """The RandomState of one face, from (seed, split name, index) only."""
    entropy = [int(seed), zlib.crc32(split.encode('utf-8')), int(index)]
    return np.random.RandomState(np.random.SeedSequence(entropy).generate_state(1)[0])


def _check_landmark_type(landmark_type):
    if landmark_type not in LANDMARK_TYPES:
        raise ValueError('landmark type %r is not one of %s'
                         % (landmark_type, ', '.join(sorted(LANDMARK_TYPES))))


def _check_folder(data_dir):
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ValueError('%s: not a folder' % data_dir)


def make_face(seed, split, index, max_yaw=MAX_YAW['3d']):
    """Render one face. Returns (BGR uint8 record image, {'2d': (68, 2), '3d': (68, 2)} x/y
    landmarks in record pixels)."""
    rng = sample_rng(seed, split, index)
    for _ in range(MAX_POSE_DRAWS):
        head = make_head(rng, max_yaw)
        plane = {name: labels(head) for name, labels in LANDMARK_TYPES.items()}
        matrix = record_transform(plane['2d'], RECORD_SIZE, top_shift=RECORD_TOP_SHIFT)
        points = {name: warp_points(pts, matrix) for name, pts in plane.items()}
        every = np.concatenate(list(points.values()))
        if np.all((every >= BORDER) & (every <= RECORD_SIZE - 1 - BORDER)):
            break
    else:
        raise ValueError('no head pose in %d draws keeps the landmarks inside the record'
                         % MAX_POSE_DRAWS)
    image = render(head, Camera(head.params['distance'], matrix), rng, RECORD_SIZE)
    return image, points


# Failures a face may hit on odd geometry; the split then skips it and reports it.
RENDER_ERRORS = (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError,
                 cv2.error)


class SplitSummary:
    """What writing one split did: records written, faces skipped (index, reason), time."""

    def __init__(self, split, rec_path):
        self.split, self.rec_path = split, rec_path
        self.written, self.skipped, self.seconds = 0, [], 0.0

    def __str__(self):
        line = '%-5s %5d faces  %6.1f s  %s' % (self.split, self.written, self.seconds,
                                                 self.rec_path)
        if self.skipped:
            line += '\n      skipped %d: %s' % (len(self.skipped), '; '.join(
                'face %d (%s)' % item for item in self.skipped))
        return line


def _face_record(seed, split, landmark_type, index):
    """Worker job: (index, image, points) or (index, None, reason) for a face that failed."""
    try:
        image, points = make_face(seed, split, index, MAX_YAW[landmark_type])
    except RENDER_ERRORS as err:
        return index, None, '%s: %s' % (type(err).__name__, err)
    return index, image, points[landmark_type]


# glibc mallopt parameter ids, and the settings: blocks below RECYCLED_BLOCK_LIMIT come from
# the heap instead of fresh mmaps, and up to RECYCLED_FREE_LIMIT of freed memory is kept.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
RECYCLED_BLOCK_LIMIT = 64 << 20
RECYCLED_FREE_LIMIT = 256 << 20


def recycle_large_allocations():
    """Make this process's malloc (glibc; elsewhere a no-op) keep and reuse image-sized
    blocks. With the defaults each temporary image of a face is a fresh mmap whose page faults
    cost as much as the rendering. Called in the rendering workers, and by the CLI (a process
    of its own) for the record encoding."""
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, RECYCLED_BLOCK_LIMIT)
        mallopt(M_TRIM_THRESHOLD, RECYCLED_FREE_LIMIT)


def _setup_worker():
    # One OpenCV thread per rendering process: the workers already fill the cores.
    cv2.setNumThreads(1)
    recycle_large_allocations()


def _pool(workers):
    return process_pool(workers, _setup_worker)


def write_split(prefix, split, count, landmark_type='2d', seed=0, workers=None,
                progress=True):
    """Render `count` faces of `split` into `<prefix>.rec/.idx` (replacing them atomically).
    Returns a SplitSummary."""
    _check_landmark_type(landmark_type)
    if count < 1:
        raise ValueError('%s: a split needs at least one face, got %d' % (prefix, count))
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    start = time.time()
    job = functools.partial(_face_record, seed, split, landmark_type)
    bar = progress_bar(total=count, desc='%s %s' % (landmark_type, split), unit='face',
                       enabled=progress)
    with RecordWriter(prefix) as writer, bar:
        summary = SplitSummary(split, writer.rec_path)
        if workers == 1:
            results = map(job, range(count))
            summary = _write_results(writer, results, summary, bar)
        else:
            with _pool(workers) as pool:
                results = pool.imap(job, range(count), chunksize=4)
                summary = _write_results(writer, results, summary, bar)
    summary.seconds = time.time() - start
    return summary


def _write_results(writer, results, summary, bar):
    for index, image, points in results:
        if image is None:
            summary.skipped.append((index, points))
        else:
            writer.write(image, points)
            summary.written += 1
        bar.update()
    return summary


def generate(data_dir, landmark_type='2d', seed=0, counts=None, workers=None, progress=True,
             only_missing=False):
    """Write the splits of `counts` ({split: faces}; splits with 0 faces are left out) into
    data_dir. With only_missing, splits whose .rec and .idx exist are kept. Returns
    {split: SplitSummary or None for a kept split}."""
    _check_landmark_type(landmark_type)
    counts = dict(DEFAULT_COUNTS, **(counts or {}))
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown:
        raise ValueError('unknown synthetic split(s): %s' % ', '.join(unknown))
    negative = sorted(split for split, count in counts.items() if count < 0)
    if negative:
        raise ValueError('negative face count for: %s' % ', '.join(negative))
    _check_folder(data_dir)
    summaries = {}
    for split in SPLITS:
        if counts[split] == 0:
            continue
        prefix = os.path.join(data_dir, split)
        if only_missing and all(os.path.exists(path) for path in split_paths(prefix)):
            summaries[split] = None
            continue
        summaries[split] = write_split(prefix, split, counts[split], landmark_type, seed,
                                       workers, progress)
    if any(summaries.values()):
        _write_manifest(data_dir, _manifest(landmark_type, seed))
    return summaries


def _manifest(landmark_type, seed):
    return {'generator_version': GENERATOR_VERSION, 'landmark_type': landmark_type,
            'seed': int(seed)}


def _read_manifest(data_dir):
    try:
        with open(os.path.join(data_dir, MANIFEST_NAME)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _write_manifest(data_dir, manifest):
    def write(tmp_path):
        with open(tmp_path, 'w') as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
    atomic_write(os.path.join(data_dir, MANIFEST_NAME), write)


def ensure_synthetic(data_dir, landmark_type='2d', seed=0, counts=None, workers=None,
                     progress=True):
    """Generate the missing `train`, `val` and `test` splits in data_dir: a no-op for splits
    whose .rec and .idx exist and were made with this seed, landmark type and generator
    version (per `synthetic.json`; other splits are made again). Returns {split: rec_path}
    (splits given 0 faces in `counts` are neither made nor listed)."""
    _check_landmark_type(landmark_type)
    _check_folder(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, LOCK_NAME), 'w') as lock:
        # Another process making the same data set (a demo and a training run started
        # together) waits here, then finds the splits made.
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Splits from another seed, landmark type or generator version are made again.
        current = _read_manifest(data_dir) == _manifest(landmark_type, seed)
        summaries = generate(data_dir, landmark_type, seed, counts, workers, progress,
                             only_missing=current)
    return {split: split_paths(os.path.join(data_dir, split))[1] for split in summaries}


def contact_sheet(path, landmark_type='2d', seed=0, split='train', count=16, columns=4,
                  tile=192):
    """Write a PNG grid of the first `count` faces of a split with their landmarks drawn."""
    _check_landmark_type(landmark_type)
    tiles = []
    for index in range(count):
        image, points = make_face(seed, split, index, MAX_YAW[landmark_type])
        small = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        tiles.append(draw_landmarks(small, points[landmark_type] * (tile / image.shape[0])))
    rows = -(-count // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - count)
    save_png(path, np.vstack([np.hstack(tiles[r * columns:(r + 1) * columns])
                              for r in range(rows)]))
    return path
