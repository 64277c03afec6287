"""Running an exported heatmap network with onnxruntime, behind HeatmapModel's interface.

onnxruntime is an optional backend: this module is imported only when it is asked for
(inference.model.load_heatmap_model).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime

from data.codec import HeatmapCodec
from symbols.heatmap_net import SIZES

from .model import LOSS_METADATA_KEY, crops_to_planes, heatmaps_in_chunks

_ORT = onnxruntime.capi.onnxruntime_pybind11_state
# onnxruntime's errors derive from Exception only.
ORT_ERRORS = (_ORT.Fail, _ORT.InvalidArgument, _ORT.InvalidGraph, _ORT.InvalidProtobuf,
              _ORT.NotImplemented, _ORT.RuntimeException)


def available_cpus():
    """How many CPUs this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class OnnxHeatmapModel:
    """`predict(crops_bgr)` like HeatmapModel, from an onnx.ModelProto, its serialised bytes
    or (`from_file`) a `.onnx` file.

    A model exported with a free batch dimension takes chunks of up to `batch_size` faces
    as they come; one exported for a fixed N gets every chunk padded to N. `loss` is the
    heatmap loss kept in the model's metadata at export (None when it has none).

    A lone face runs in one session on onnxruntime's default thread pool (a thread per core).
    A chunk of two or more faces (a face and its mirror in the flip test, or a batch) is split
    between `workers` single-threaded sessions that run their parts at the same time (by
    default one per CPU, at most `batch_size`): the shipped model's small convolutions keep one
    core busy better than they split across two, so this was faster at batches 2 and 16 on 2
    cores (docs/benchmarks.md). With `workers` 1 every chunk runs in the one session, as it
    always does for a fixed-batch model.
    """

    def __init__(self, model, batch_size=16, source='ONNX model', workers=None):
        if int(batch_size) < 1:
            raise ValueError('batch size must be at least 1, got %r' % (batch_size,))
        workers = min(available_cpus(), int(batch_size)) if workers is None else int(workers)
        if workers < 1:
            raise ValueError('workers must be at least 1, got %r' % (workers,))
        payload = model if isinstance(model, bytes) else model.SerializeToString()
        try:
            self._session = onnxruntime.InferenceSession(
                payload, providers=['CPUExecutionProvider'])
            inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
            if (len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4
                    or not isinstance(inputs[0].shape[2], int)
                    or inputs[0].shape[2] != inputs[0].shape[3]):
                raise ValueError('%s: expected one N x 3 x S x S input and one output, '
                                 'got input shapes %s and %d outputs'
                                 % (source, [i.shape for i in inputs], len(outputs)))
            self.input_size = inputs[0].shape[2]
            self.loss = self._session.get_modelmeta().custom_metadata_map.get(
                LOSS_METADATA_KEY)
            self._input_name = inputs[0].name
            batch = inputs[0].shape[0]
            self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
            self.batch_size = self.fixed_batch or int(batch_size)
            self.workers = 1 if self.fixed_batch else workers
            split = self.workers > 1
            self._worker_sessions = [_single_threaded_session(payload)
                                     for _ in range(self.workers)] if split else []
            self._pool = ThreadPoolExecutor(self.workers) if split else None
            probe = np.zeros((1, 3, self.input_size, self.input_size), np.float32)
            self.heatmap_shape = tuple(self._run(probe).shape[1:])
            self.heatmap_size = self.heatmap_shape[-1]
            if (self.input_size, self.heatmap_size) not in SIZES:
                raise ValueError('%s: maps a %d x %d input to %s, not a heatmap network of a '
                                 'supported size (%s)' % (
                                     source, self.input_size, self.input_size,
                                     ' x '.join(map(str, self.heatmap_shape)),
                                     ', '.join('%d/%d' % size for size in SIZES)))
        except ORT_ERRORS as exc:
            raise ValueError('%s: onnxruntime cannot run it (%s)'
                             % (source, str(exc).strip().splitlines()[0])) from None

    def codec(self, decode='argmax'):
        """The heatmap codec of this model's geometry and training loss."""
        return HeatmapCodec(self.input_size, self.heatmap_size, decode_method=decode,
                            loss=self.loss or 'l2')

    @classmethod
    def from_file(cls, path, batch_size=16, workers=None):
        try:
            with open(path, 'rb') as handle:
                payload = handle.read()
        except OSError as exc:
            raise ValueError('%s: cannot read ONNX model (%s)' % (path, exc.strerror)) from None
        return cls(payload, batch_size=batch_size, source=path, workers=workers)

    def _run(self, planes):
        count = len(planes)
        if self._pool is not None and count > 1:
            parts = np.array_split(planes, min(count, self.workers))
            return np.concatenate(list(self._pool.map(
                self._run_in, self._worker_sessions[:len(parts)], parts)))
        if self.fixed_batch is not None and count != self.fixed_batch:
            padded = np.zeros((self.fixed_batch,) + planes.shape[1:], dtype=np.float32)
            padded[:count] = planes
            planes = padded
        return self._run_in(self._session, planes)[:count]

    def _run_in(self, session, planes):
        return session.run(None, {self._input_name: planes})[0]

    def predict(self, crops_bgr):
        """(N, S, S, 3) uint8 BGR crops -> (N, 68, h, w) float32 heatmaps."""
        return self.predict_planes(crops_to_planes(crops_bgr, self.input_size))

    def predict_planes(self, planes):
        """(N, 3, S, S) float32 RGB planes -> (N, 68, h, w) float32 heatmaps."""
        return heatmaps_in_chunks(self._run, np.ascontiguousarray(planes, dtype=np.float32),
                                  self.batch_size, self.heatmap_shape)


def _single_threaded_session(payload):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(payload, options, providers=['CPUExecutionProvider'])
