"""Running an exported heatmap network with onnxruntime, behind HeatmapModel's interface.

onnxruntime is an optional backend: this module is imported only when it is asked for
(inference.model.load_heatmap_model).
"""
import numpy as np
import onnxruntime

from data.codec import HeatmapCodec
from symbols.heatmap_net import SIZES

from .model import LOSS_METADATA_KEY, crops_to_planes

_ORT = onnxruntime.capi.onnxruntime_pybind11_state
# onnxruntime's errors derive from Exception only.
ORT_ERRORS = (_ORT.Fail, _ORT.InvalidArgument, _ORT.InvalidGraph, _ORT.InvalidProtobuf,
              _ORT.NotImplemented, _ORT.RuntimeException)


class OnnxHeatmapModel:
    """`predict(crops_bgr)` like HeatmapModel, from an onnx.ModelProto, its serialised bytes
    or (`from_file`) a `.onnx` file.

    A model exported with a free batch dimension takes chunks of up to `batch_size` faces
    as they come; one exported for a fixed N gets every chunk padded to N. `loss` is the
    heatmap loss kept in the model's metadata at export (None when it has none).
    """

    def __init__(self, model, batch_size=16, source='ONNX model'):
        if int(batch_size) < 1:
            raise ValueError('batch size must be at least 1, got %r' % (batch_size,))
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
    def from_file(cls, path, batch_size=16):
        try:
            with open(path, 'rb') as handle:
                payload = handle.read()
        except OSError as exc:
            raise ValueError('%s: cannot read ONNX model (%s)' % (path, exc.strerror)) from None
        return cls(payload, batch_size=batch_size, source=path)

    def _run(self, planes):
        count = len(planes)
        if self.fixed_batch is not None and count != self.fixed_batch:
            padded = np.zeros((self.fixed_batch,) + planes.shape[1:], dtype=np.float32)
            padded[:count] = planes
            planes = padded
        return self._session.run(None, {self._input_name: planes})[0][:count]

    def predict(self, crops_bgr):
        """(N, S, S, 3) uint8 BGR crops -> (N, 68, h, w) float32 heatmaps."""
        planes = crops_to_planes(crops_bgr, self.input_size)
        outputs = [self._run(planes[start:start + self.batch_size])
                   for start in range(0, len(planes), self.batch_size)]
        if not outputs:
            return np.zeros((0,) + self.heatmap_shape, dtype=np.float32)
        return np.concatenate(outputs)
