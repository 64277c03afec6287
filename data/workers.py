"""Record -> crops, in worker processes: decoding, checks and augmentation of single samples.

Results come back in submission order, so a run is deterministic for a given seed whatever the
number of workers: every sample draws from its own RandomState seeded by (seed, epoch, index).
"""
import collections
import multiprocessing
import os
import struct

import cv2
import numpy as np

from .augment import ORIGINAL_AUGMENTATION, augment, validation_crop
from .recordio import RecordError, unpack_record

# A record is rejected when a landmark lies farther outside its image than this fraction of
# the image side: such labels are in another coordinate frame or corrupt.
OUTSIDE_MARGIN = 0.5
# Why a training sample is dropped without its record being bad (the original drops it too).
CROP_MISS = 'landmarks left the crop in every augmentation try'
# Tasks (chunks of samples) queued per worker ahead of the consumer.
CHUNKS_AHEAD_PER_WORKER = 4
# A chunk that takes longer than this means a worker process died (its task is then lost).
CHUNK_TIMEOUT_S = 600


class SampleLoader:
    """Reads, decodes and crops single records; picklable, so it runs in worker processes.

    aug_level > 0: training augmentation; 0: the protocol crop (docs/protocol.md §3) with
    `top_shift`.
    Images come out RGB, as the original's MXNet decoder delivered them.
    """

    def __init__(self, records, aug_level, input_size=128, label_size=64, base_scale=256,
                 label_xfirst=False, coherent=False, top_shift=None,
                 augmentation=ORIGINAL_AUGMENTATION):
        self.records = records
        self.aug_level = aug_level
        self.input_size, self.label_size = input_size, label_size
        self.base_scale = base_scale
        self.label_xfirst = label_xfirst
        self.coherent = coherent
        self.top_shift = top_shift
        self.augmentation = augmentation

    def decode(self, offset):
        """(BGR image, (68, 2) x/y points) of the record at `offset`; ValueError if unusable."""
        try:
            image, points, _ = unpack_record(self.records.read(offset), self.label_xfirst)
        except struct.error:
            raise RecordError('record header is truncated') from None
        except cv2.error:
            raise RecordError('image does not decode') from None
        if not np.all(np.isfinite(points)):
            raise ValueError('label has NaN or infinite points')
        height, width = image.shape[:2]
        margin = OUTSIDE_MARGIN * max(height, width)
        if not (points[:, 0].min() >= -margin and
                points[:, 1].min() >= -margin and points[:, 0].max() < width + margin and
                points[:, 1].max() < height + margin):
            raise ValueError('landmarks far outside the %dx%d image' % (width, height))
        return image, points

    def load(self, key, offset, seed):
        """-> (key, list of augment.Crop, None) or (key, None, reason) for a skipped record."""
        try:
            image, points = self.decode(offset)
            if self.aug_level == 0:
                crops = [validation_crop(image, points, self.top_shift, self.input_size,
                                         self.label_size)]
            else:
                crops = augment(image, points, np.random.RandomState(seed), self.input_size,
                                self.label_size, self.base_scale, self.coherent,
                                self.augmentation)
        except ValueError as err:
            return key, None, str(err)
        if crops is None:
            return key, None, CROP_MISS
        # Colour order is swapped on the small crops rather than the record image: the warps
        # treat channels alike, so the pixels are the same.
        return key, [crop._replace(image=cv2.cvtColor(crop.image, cv2.COLOR_BGR2RGB))
                     for crop in crops], None

    def load_chunk(self, tasks):
        return [self.load(*task) for task in tasks]


_worker_loader = None


def _start_worker(loader):
    global _worker_loader
    _worker_loader = loader


def _load_chunk_in_worker(tasks):
    return _worker_loader.load_chunk(tasks)


def _start_detached(initializer, initargs):
    """A pool worker's start: its own process group first. A signal sent to the caller's
    group (Ctrl-C in a terminal, `timeout`, a batch scheduler's SIGTERM) then reaches only the
    caller, which stops its work and closes the pool. Had it killed a worker too, one waiting
    for a task would die holding the task queue's lock, and closing the pool would wait for
    that lock for ever."""
    os.setpgrp()
    initializer(*initargs)


def process_pool(num_workers, initializer, initargs=()):
    """A multiprocessing Pool of spawned workers, each in its own process group
    (_start_detached). Spawned, not forked: forking a caller that runs MXNet or OpenCV threads
    can deadlock the child. Not from a fork server either: a signal to the caller's group
    killed the server, and the pool, which hears of its workers through it, took them all for
    dead and started new ones through a server that was gone."""
    context = multiprocessing.get_context('spawn')
    return context.Pool(num_workers, initializer=_start_detached,
                        initargs=(initializer, initargs))


class SampleStream:
    """Runs a SampleLoader over task lists, in `num_workers` processes (0: in this process),
    yielding results in task order with a bounded number of chunks in flight.

    Workers come from `process_pool` (spawned), so the main script must guard its entry point
    with `if __name__ == '__main__'`.
    """

    def __init__(self, loader, num_workers, chunk_size=8):
        self.loader = loader
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self._pool = None
        if num_workers > 0:
            self._pool = process_pool(num_workers, _start_worker, (loader,))

    def run(self, tasks):
        """Generator of loader.load results for (key, offset, seed) tasks, in order."""
        chunks = [tasks[i:i + self.chunk_size] for i in range(0, len(tasks), self.chunk_size)]
        if self._pool is None:
            for chunk in chunks:
                yield from self.loader.load_chunk(chunk)
            return
        pending = collections.deque()
        ahead = CHUNKS_AHEAD_PER_WORKER * self.num_workers
        for chunk in chunks:
            pending.append(self._pool.apply_async(_load_chunk_in_worker, (chunk,)))
            if len(pending) >= ahead:
                yield from self._result(pending.popleft())
        while pending:
            yield from self._result(pending.popleft())

    @staticmethod
    def _result(pending):
        try:
            return pending.get(CHUNK_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            raise RuntimeError('data worker gave no result in %d s (did a worker process die?)'
                               % CHUNK_TIMEOUT_S) from None

    def close(self):
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
