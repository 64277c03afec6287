"""FaceSegIter: batches of network inputs and targets from a RecordIO data set.

Semantics of the original toolkit's iterator (docs/data-format.md §5-§7): training crops with
rotation, scale and flip augmentation, heatmap (or coordinate) targets, `exf` copies of the data per epoch, and
coherent pairs (flipped copies in the second half of each device's batch) for the flip-
consistency loss. Decoding and augmentation run in worker processes; batches are assembled in
numpy and handed to MXNet without a copy. Bad records are skipped, counted, and reported at the
end of the epoch in `skipped` and the log.
"""
import logging
import os
import weakref

import mxnet as mx
import numpy as np

from .augment import Augmentation
from .codec import HeatmapCodec
from .landmarks import NUM_LANDMARKS
from .recordio import top_shift_for
from .records import RecordFile
from .workers import CROP_MISS, SampleLoader, SampleStream

log = logging.getLogger(__name__)


class FaceSegIter(mx.io.DataIter):
    """Batches from one `.rec` file.

    data: (N, 3, S, S) float32 RGB 0..255 crops (S = cfg['input_img_size']). label
    `softmax_label`: (N, 68, L, L) heatmaps (L = cfg['output_label_size']), or with
    cfg['losstype'] != 'heatmap' (N, 68, 2) x/y divided by S. aug_level > 0 augments
    (docs/data-format.md §5); aug_level 0 yields the protocol's evaluation crops
    (docs/protocol.md §3) with the box top shift of the file's data set (or `top_shift`). `shuffle` (default: when augmenting, as the original) reorders the
    records every epoch.

    Each batch also carries `index` (record keys), `points` ((N, 68, 2) x/y landmarks in crop
    pixels, unrounded) and `transforms` ((N, 2, 3) record-image -> crop maps). The last batch
    of an epoch is completed with repeated samples and `pad` says how many. With coherent pairs
    each device's share of the batch (cfg['per_batch_size']) is [crops, flipped crops].

    Bad records (undecodable, wrong label length, landmarks far outside the image) are listed
    in `skipped` as (key, reason) and logged as a warning when the epoch ends; training samples
    whose landmarks left every augmentation crop are dropped as in the original and listed in
    `crop_misses`.

    Epochs: the first is epoch 0 and each reset() starts the next. Sample i of epoch e draws its
    augmentation from RandomState((seed, e, i)), so a seed fixes every batch whatever
    `num_workers` is (None: one per CPU core, 0: decode in this process).
    `part_index`/`num_parts` keep every num_parts-th record, for distributed training.
    """

    def __init__(self, rec_path, batch_size, cfg, aug_level=1, shuffle=None, num_workers=None,
                 seed=0, exf=1, part_index=0, num_parts=1, top_shift=None,
                 data_name='data', label_name='softmax_label'):
        super().__init__(batch_size)
        if cfg['num_classes'] != NUM_LANDMARKS:
            raise ValueError('FaceSegIter supports %d landmarks, cfg has %d'
                             % (NUM_LANDMARKS, cfg['num_classes']))
        if not 0 <= part_index < num_parts:
            raise ValueError('part_index %d is not in [0, %d)' % (part_index, num_parts))
        if exf < 1:
            raise ValueError('exf must be >= 1, got %d' % exf)
        self.records = RecordFile(rec_path)
        self.keys = self.records.keys[part_index::num_parts]
        self.offsets = dict(zip(self.records.keys, self.records.offsets))
        if not self.keys:
            raise ValueError('%s: no records for part %d of %d'
                             % (self.records.rec_path, part_index, num_parts))
        self.cfg = cfg
        self.aug_level, self.seed, self.exf = aug_level, seed, exf
        self.shuffle = aug_level > 0 if shuffle is None else shuffle
        self.input_size = cfg['input_img_size']
        self.label_size = cfg['output_label_size']
        self.codec = HeatmapCodec.from_config(cfg)
        self.heatmap_target = cfg['losstype'] == 'heatmap'
        self.coherent = bool(cfg['net_coherent']) and aug_level > 0
        self.pair_group = self._pair_group(batch_size, cfg) if self.coherent else 0
        label_shape = ((NUM_LANDMARKS, self.label_size, self.label_size) if self.heatmap_target
                       else (NUM_LANDMARKS, 2))
        self.provide_data = [mx.io.DataDesc(data_name, (batch_size, 3, self.input_size,
                                                        self.input_size))]
        self.provide_label = [mx.io.DataDesc(label_name, (batch_size,) + label_shape)]
        loader = SampleLoader(
            self.records, aug_level, self.input_size, self.label_size, cfg['base_scale'],
            cfg['label_xfirst'], self.coherent,
            top_shift if top_shift is not None else top_shift_for(self.records.rec_path),
            Augmentation.from_config(cfg))
        workers = os.cpu_count() if num_workers is None else num_workers
        self._stream = SampleStream(loader, workers)
        self._finalizer = weakref.finalize(self, self._stream.close)
        self.epoch = -1
        self.reset()

    @staticmethod
    def _pair_group(batch_size, cfg):
        group = min(cfg['per_batch_size'], batch_size)
        if group % 2 or batch_size % group:
            raise ValueError('coherent pairs need an even per_batch_size dividing the batch size,'
                             ' got per_batch_size %d and batch size %d' % (group, batch_size))
        return group

    @property
    def num_samples(self):
        """Samples per epoch before skips (records x exf)."""
        return len(self.keys) * self.exf

    def epoch_order(self, epoch):
        """Record keys in the order epoch `epoch` visits them."""
        rng = np.random.RandomState([self.seed, epoch])
        copies = [rng.permutation(self.keys) if self.shuffle else np.asarray(self.keys)
                  for _ in range(self.exf)]
        return np.concatenate(copies).tolist()

    def reset(self):
        """Start the next epoch."""
        self.epoch += 1
        self.batches_in_epoch = 0
        self.skipped = []
        self.crop_misses = []
        tasks = [(key, self.offsets[key], (self.seed, self.epoch, position))
                 for position, key in enumerate(self.epoch_order(self.epoch))]
        self._samples = self._epoch_samples(tasks)

    def _epoch_samples(self, tasks):
        """Generator of (key, crops) for the epoch; records the dropped ones, reports at the end."""
        for key, crops, reason in self._stream.run(tasks):
            if crops is not None:
                yield key, crops
            elif reason == CROP_MISS:
                self.crop_misses.append(key)
            else:
                self.skipped.append((key, reason))
        if self.crop_misses:
            log.info('%s: epoch %d dropped %d samples whose landmarks left every augmentation '
                     'crop', self.records.rec_path, self.epoch, len(self.crop_misses))
        if self.skipped:
            log.warning('%s: epoch %d skipped %d of %d samples: %s', self.records.rec_path,
                        self.epoch, len(self.skipped), len(tasks),
                        '; '.join('record %s: %s' % item for item in self.skipped))

    def next(self):
        per_sample = 2 if self.coherent else 1
        wanted = self.batch_size // per_sample
        samples = []
        for item in self._samples:
            samples.append(item)
            if len(samples) == wanted:
                break
        if not samples:
            raise StopIteration
        self.batches_in_epoch += 1
        pad = (wanted - len(samples)) * per_sample
        samples += [samples[i % len(samples)] for i in range(wanted - len(samples))]
        return self._assemble(samples, pad)

    def seek(self, epoch, batches):
        """Continue at batch `batches` of epoch `epoch` (0-based), where a run that was
        stopped there left off (`epoch`, `batches_in_epoch`): the epoch starts again and its
        first `batches` batches are drawn and dropped, so the batches after them are the ones
        the stopped run would have trained on (every augmentation is fixed by the seed, the
        epoch and the sample's position). Only before the first batch is read."""
        self.epoch = epoch - 1
        self.reset()
        wanted = self.batch_size // (2 if self.coherent else 1)
        for _ in range(batches * wanted):
            if next(self._samples, None) is None:
                break
        self.batches_in_epoch = batches

    def _slots(self, samples):
        """(key, Crop) for each batch row: in order, or coherent pairs per device group."""
        if not self.coherent:
            return [(key, crops[0]) for key, crops in samples]
        slots = [None] * self.batch_size
        half = self.pair_group // 2
        for unit, (key, (crop, flipped)) in enumerate(samples):
            group, offset = divmod(unit, half)
            slots[group * self.pair_group + offset] = (key, crop)
            slots[group * self.pair_group + half + offset] = (key, flipped)
        return slots

    def _assemble(self, samples, pad):
        keys, crops = zip(*self._slots(samples))
        images = np.stack([crop.image for crop in crops])
        data = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)
        points = np.stack([crop.points for crop in crops])
        if self.heatmap_target:
            label = np.zeros(self.provide_label[0].shape, dtype=np.float32)
            self.codec.render(label, np.stack([crop.cells for crop in crops]),
                              np.stack([crop.centres for crop in crops]))
        else:
            label = (points / self.input_size).astype(np.float32)
        # Zero-copy hand-over: the batch arrays are fresh and never written again.
        batch = mx.io.DataBatch(data=[mx.nd.from_numpy(data, zero_copy=True)],
                                label=[mx.nd.from_numpy(label, zero_copy=True)], pad=pad,
                                index=np.asarray(keys), provide_data=self.provide_data,
                                provide_label=self.provide_label)
        batch.points = points
        batch.transforms = np.stack([crop.transform for crop in crops])
        return batch

    def close(self):
        """Stop the worker processes (also done when the iterator is garbage-collected)."""
        self._finalizer()
