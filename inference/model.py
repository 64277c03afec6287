"""Running a heatmap network checkpoint (symbols.checkpoint) in batches, at the input size
read off its graph."""
import importlib
import os

import mxnet as mx
import numpy as np

from console import error_line
from data.codec import HeatmapCodec
from data.landmarks import FLIP_ORDER
from essh.loader import check_context
from symbols.checkpoint import (checked_params, checkpoint_loss, load_inference_checkpoint,
                                network_sizes, params_path, symbol_path)
from symbols.precision import bf16_inference_model, check_dtype, prepare_bf16

from .model_dir import check_card_matches, is_model_dir, is_onnx_file, open_model_dir

# ONNX metadata key of an exported model's heatmap loss ('ce' or 'l2'), which says how to read
# its maps' peak confidence (data.codec.peak_confidence).
LOSS_METADATA_KEY = 'heatmap_loss'


def context_for_gpu(gpu):
    """`--gpu` convention of the original: a negative id means the CPU."""
    return mx.cpu() if gpu is None or gpu < 0 else mx.gpu(gpu)


def crops_to_planes(crops_bgr, input_size):
    """(N, S, S, 3) BGR crops -> the network's (N, 3, S, S) float32 RGB planes (S =
    input_size, refused otherwise)."""
    crops = np.asarray(crops_bgr)
    if crops.ndim != 4 or crops.shape[1:] != (input_size, input_size, 3):
        raise ValueError('face crops must be (N, %d, %d, 3) for this model, got %s'
                         % (input_size, input_size, crops.shape))
    return np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)


def heatmaps_in_chunks(run_chunk, planes, batch_size, heatmap_shape):
    """The (N, *heatmap_shape) heatmaps of `planes`, from `run_chunk` called on chunks of at
    most `batch_size` planes. A lone chunk's output is returned as it is, not copied."""
    outputs = [run_chunk(planes[start:start + batch_size])
               for start in range(0, len(planes), batch_size)]
    if not outputs:
        return np.zeros((0,) + tuple(heatmap_shape), dtype=np.float32)
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


class HeatmapModel:
    """Batched forward of a heatmap network: BGR face crops -> 68 heatmaps each.

    `input_size` and `heatmap_size` are read off the graph (symbols.checkpoint.network_sizes),
    so a 256/64 model gets 256 x 256 crops; `codec(decode)` decodes its maps. `loss` is the
    heatmap loss the training graph was built with ('ce' or 'l2'; None for a bare inference
    graph), which says how to read the maps' peak confidence (data.codec.peak_confidence).

    Faces go through in chunks of at most `batch_size`. One executor is bound per chunk size
    that occurs (all sharing the weights) and kept, so a lone face costs a batch-1 forward
    rather than a padded full batch. On the CPU, MXNet 1.9 binds inference executors through
    its MKLDNN subgraph backend (conv + BN + ReLU fused), so nothing extra is needed here;
    tests/test_infer_speed_paths.py checks the fused and unfused graphs agree.

    The network takes RGB planes as 0..255 floats (it normalises inside the graph), so the
    colour swap happens here and callers keep OpenCV's BGR everywhere.

    `dtype` 'bf16' runs the network in bfloat16 mixed precision on the CPU
    (symbols.precision): the float32 checkpoint is converted at load, heatmaps stay float32.
    """

    def __init__(self, prefix, epoch=0, ctx=None, batch_size=16, dtype='float32'):
        if int(batch_size) < 1:
            raise ValueError('batch size must be at least 1, got %r' % (batch_size,))
        check_dtype(dtype)
        self.ctx = ctx if ctx is not None else mx.cpu()
        if dtype == 'bf16':
            if self.ctx.device_type != 'cpu':
                raise ValueError('dtype bf16 runs on the CPU only, not on %s' % self.ctx)
            prepare_bf16()
        self.dtype = dtype
        self._symbol, arg_params, aux_params = load_inference_checkpoint(prefix, epoch)
        self.batch_size = int(batch_size)
        weights_path = params_path(prefix, epoch)
        self.input_size, self.heatmap_size = network_sizes(self._symbol, symbol_path(prefix))
        self.loss = checkpoint_loss(prefix)
        try:
            arg_params, aux_params = checked_params(self._symbol, arg_params, aux_params,
                                                    weights_path, self.input_size)
            if dtype == 'bf16':
                self._symbol, arg_params, aux_params = bf16_inference_model(
                    self._symbol, arg_params, aux_params)
            self._arg_params = {k: v.as_in_context(self.ctx) for k, v in arg_params.items()}
            self._aux_params = {k: v.as_in_context(self.ctx) for k, v in aux_params.items()}
            self._executors = {}
            self.heatmap_shape = tuple(self._executor(1).outputs[0].shape[1:])
        except (RuntimeError, mx.base.MXNetError) as exc:
            raise ValueError('cannot run %s on %s: %s' % (symbol_path(prefix), self.ctx,
                                                          error_line(exc))) from None

    def codec(self, decode='argmax'):
        """The heatmap codec of this model's geometry and training loss."""
        return HeatmapCodec(self.input_size, self.heatmap_size, decode_method=decode,
                            loss=self.loss or 'l2')

    def _executor(self, batch):
        """The executor bound for `batch` faces (bound on first use)."""
        executor = self._executors.get(batch)
        if executor is None:
            data = mx.nd.zeros((batch, 3, self.input_size, self.input_size), ctx=self.ctx)
            executor = self._symbol.bind(self.ctx, args=dict(self._arg_params, data=data),
                                         aux_states=self._aux_params, grad_req='null')
            self._executors[batch] = executor
        return executor

    def predict(self, crops_bgr):
        """(N, S, S, 3) uint8 BGR crops -> (N, 68, h, w) float32 heatmaps."""
        return self.predict_planes(crops_to_planes(crops_bgr, self.input_size))

    def predict_planes(self, planes):
        """(N, 3, S, S) float32 RGB planes (crops_to_planes, or a training batch's data) ->
        (N, 68, h, w) float32 heatmaps."""
        return heatmaps_in_chunks(self._run_chunk, planes, self.batch_size, self.heatmap_shape)

    def _run_chunk(self, chunk):
        executor = self._executor(len(chunk))
        executor.arg_dict['data'][:] = chunk
        executor.forward(is_train=False)
        return executor.outputs[0].asnumpy()


class FlipTest:
    """Flip test-time augmentation around any predictor: each crop and its mirror image go
    through the network together, and the mirror's maps, flipped back and renumbered with the
    68-point mirror permutation (as training flips its targets), are averaged with the crop's."""
    flip_test = True   # what evaluation results record

    def __init__(self, model):
        self.model = model
        self.input_size, self.heatmap_size = model.input_size, model.heatmap_size
        self.heatmap_shape, self.loss = model.heatmap_shape, model.loss

    def codec(self, decode='argmax'):
        return self.model.codec(decode)

    def predict(self, crops_bgr):
        return self.predict_planes(crops_to_planes(crops_bgr, self.input_size))

    def predict_planes(self, planes):
        maps = self.model.predict_planes(np.concatenate([planes, planes[..., ::-1]]))
        count = len(planes)
        if maps.shape[1] != len(FLIP_ORDER):
            raise ValueError('flip test needs the 68-point mirror permutation, the model '
                             'predicts %d maps' % maps.shape[1])
        return (maps[:count] + maps[count:, FLIP_ORDER, :, ::-1]) / 2


BACKENDS = ('auto', 'mxnet', 'onnxruntime')


def resolve_backend(backend, prefix, ctx=None, dtype='float32'):
    """The backend 'auto' stands for: onnxruntime for a `.onnx` file, and on the CPU in float32
    when it is installed (about twice as fast as MXNet there at batch 1 and 16, flip test or
    not, with the same argmax landmarks: docs/benchmarks.md); otherwise mxnet (GPU, bf16, or no
    onnxruntime). Any other name is returned as it is."""
    if backend != 'auto':
        return backend
    if is_onnx_file(prefix):
        return 'onnxruntime'
    on_cpu = ctx is None or ctx.device_type == 'cpu'
    return 'onnxruntime' if on_cpu and dtype == 'float32' and _onnxruntime_imports() else 'mxnet'


def _onnxruntime_imports():
    try:
        importlib.import_module('onnxruntime')
    except ImportError:
        return False
    return True


def load_heatmap_model(prefix, epoch=0, backend='auto', ctx=None, batch_size=16,
                       flip_test=False, dtype='float32'):
    """A heatmap predictor for a checkpoint `prefix`, or for a model directory (checkpoint and
    card, inference.model_dir: its card must state the network's sizes). `backend` 'mxnet' ->
    HeatmapModel on `ctx`; 'onnxruntime' -> OnnxHeatmapModel (CPU) of `prefix` when it is a
    `.onnx` file, else of the checkpoint exported on the fly; 'auto' -> whichever
    resolve_backend picks. onnx and onnxruntime are imported only for that backend.
    `flip_test` wraps the predictor in FlipTest. `dtype` 'bf16' (mxnet backend on the CPU
    only) runs the network in bfloat16 mixed precision."""
    epoch = checked_epoch(epoch)
    check_onnx_request(prefix, epoch, backend)
    check_context(ctx)
    check_dtype(dtype)
    model_dir = prefix if is_model_dir(prefix) else None
    if model_dir is not None:
        prefix, stated = open_model_dir(model_dir)
    backend = resolve_backend(backend, prefix, ctx, dtype)
    if dtype != 'float32' and backend != 'mxnet':
        raise ValueError('dtype %s is offered for the mxnet backend only: onnxruntime\'s CPU '
                         'provider has no bf16 convolution (docs/benchmarks.md)' % dtype)
    model = _load_backend(prefix, epoch, backend, ctx, batch_size, dtype)
    if model_dir is not None:
        check_card_matches(model_dir, stated, model.input_size, model.heatmap_shape)
    return FlipTest(model) if flip_test else model


def check_onnx_request(prefix, epoch, backend):
    """ValueError for what an exported `.onnx` prefix cannot honour, rather than ignoring it:
    it holds one set of weights (no epochs), and only onnxruntime runs it. The CLIs call it
    before any work."""
    if not is_onnx_file(prefix):
        return
    if epoch:
        raise ValueError('%s is an ONNX model, which has no epochs: drop epoch %s'
                         % (prefix, epoch))
    if backend == 'mxnet':
        raise ValueError('%s is an ONNX model, which runs on the onnxruntime backend, not '
                         'mxnet' % prefix)


def checked_epoch(epoch):
    """A checkpoint epoch as an int >= 0; an int-like string ('0', '12', as read from a
    command line or a config file) is accepted, anything else is a ValueError."""
    if isinstance(epoch, (bool, np.bool_)):
        raise ValueError('epoch must be an integer >= 0, got %r' % (epoch,))
    if isinstance(epoch, str) and epoch.strip().isdigit():
        return int(epoch)
    if isinstance(epoch, (int, np.integer)) and epoch >= 0:
        return int(epoch)
    raise ValueError('epoch must be an integer >= 0 (or a string of digits), got %r' % (epoch,))


def _load_backend(prefix, epoch, backend, ctx, batch_size, dtype):
    if backend == 'mxnet':
        return HeatmapModel(prefix, epoch, ctx=ctx, batch_size=batch_size, dtype=dtype)
    if backend != 'onnxruntime':
        raise ValueError('unknown inference backend %r; valid: %s'
                         % (backend, ', '.join(BACKENDS)))
    try:
        from .onnx_model import OnnxHeatmapModel
    except ImportError as exc:
        raise ValueError('the onnxruntime backend needs onnxruntime (%s); install '
                         'requirements-nodeps.txt or use backend mxnet' % exc) from None
    if is_onnx_file(prefix):
        if not os.path.isfile(prefix):
            raise ValueError('%s: no such ONNX model' % prefix)
        return OnnxHeatmapModel.from_file(prefix, batch_size=batch_size)
    from .onnx_export import onnx_model_of
    return OnnxHeatmapModel(onnx_model_of(prefix, epoch), batch_size=batch_size,
                            source=symbol_path(prefix))
