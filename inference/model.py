"""Loading a heatmap network checkpoint of the original toolkit and running it in batches.

A checkpoint is `<prefix>-symbol.json` + `<prefix>-%04d.params` as written by
`mx.model.save_checkpoint`. The json is either the training graph (its internal
`heatmap_output` is bound, as the original's test scripts do) or already an inference graph.
"""
import os

import mxnet as mx
import numpy as np

from model_params import checked_params, error_line, load_params
from symbols import heatmap_output
from training.checkpoint import params_path

INPUT_SIZE = 128


def context_for_gpu(gpu):
    """`--gpu` convention of the original: a negative id means the CPU."""
    return mx.cpu() if gpu is None or gpu < 0 else mx.gpu(gpu)


def checkpoint_paths(prefix, epoch):
    return '%s-symbol.json' % prefix, params_path(prefix, epoch)


def load_inference_checkpoint(prefix, epoch):
    """(inference Symbol, arg_params, aux_params) of a checkpoint; ValueError naming the file
    when something is missing or unusable."""
    symbol_path, weights_path = checkpoint_paths(prefix, epoch)
    missing = [path for path in (symbol_path, weights_path) if not os.path.isfile(path)]
    if missing:
        raise ValueError('model file not found: %s (looked for %s and %s in %s)' % (
            ', '.join(missing), os.path.basename(symbol_path), os.path.basename(weights_path),
            os.path.abspath(os.path.dirname(symbol_path) or '.')))
    try:
        symbol = mx.sym.load(symbol_path)
    except mx.base.MXNetError as exc:
        raise ValueError('%s: not a readable MXNet symbol (%s)'
                         % (symbol_path, error_line(exc))) from None
    if 'heatmap_output' in symbol.get_internals().list_outputs():
        symbol = heatmap_output(symbol)
    elif 'softmax_label' in symbol.list_arguments() or len(symbol.list_outputs()) != 1:
        raise ValueError('%s: has no heatmap_output and is not a single-output inference graph'
                         % symbol_path)
    arg_params, aux_params = load_params(weights_path)
    return symbol, arg_params, aux_params


def crops_to_planes(crops_bgr):
    """(N, 128, 128, 3) BGR crops -> the network's (N, 3, 128, 128) float32 RGB planes."""
    crops = np.asarray(crops_bgr)
    if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError('face crops must be (N, %d, %d, 3), got %s'
                         % (INPUT_SIZE, INPUT_SIZE, crops.shape))
    return np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)


class HeatmapModel:
    """Batched forward of a heatmap network: BGR 128 x 128 face crops -> 68 heatmaps each.

    Faces go through in chunks of at most `batch_size`. One executor is bound per chunk size
    that occurs (all sharing the weights) and kept, so a lone face costs a batch-1 forward
    rather than a padded full batch. On the CPU, MXNet 1.9 binds inference executors through
    its MKLDNN subgraph backend (conv + BN + ReLU fused), so nothing extra is needed here;
    tests/test_infer_speed_paths.py checks the fused and unfused graphs agree.

    The network takes RGB planes as 0..255 floats (it normalises inside the graph), so the
    colour swap happens here and callers keep OpenCV's BGR everywhere.
    """

    def __init__(self, prefix, epoch=0, ctx=None, batch_size=16):
        if int(batch_size) < 1:
            raise ValueError('batch size must be at least 1, got %r' % (batch_size,))
        self._symbol, arg_params, aux_params = load_inference_checkpoint(prefix, epoch)
        self.batch_size = int(batch_size)
        self.ctx = ctx if ctx is not None else mx.cpu()
        symbol_path, weights_path = checkpoint_paths(prefix, epoch)
        try:
            arg_params, aux_params = checked_params(self._symbol, arg_params, aux_params,
                                                    weights_path, INPUT_SIZE)
            self._arg_params = {k: v.as_in_context(self.ctx) for k, v in arg_params.items()}
            self._aux_params = {k: v.as_in_context(self.ctx) for k, v in aux_params.items()}
            self._executors = {}
            self.heatmap_shape = tuple(self._executor(1).outputs[0].shape[1:])
        except (RuntimeError, mx.base.MXNetError) as exc:
            raise ValueError('cannot run %s on %s: %s' % (symbol_path, self.ctx,
                                                          error_line(exc))) from None

    def _executor(self, batch):
        """The executor bound for `batch` faces (bound on first use)."""
        executor = self._executors.get(batch)
        if executor is None:
            data = mx.nd.zeros((batch, 3, INPUT_SIZE, INPUT_SIZE), ctx=self.ctx)
            executor = self._symbol.bind(self.ctx, args=dict(self._arg_params, data=data),
                                         aux_states=self._aux_params, grad_req='null')
            self._executors[batch] = executor
        return executor

    def predict(self, crops_bgr):
        """(N, 128, 128, 3) uint8 BGR crops -> (N, 68, h, w) float32 heatmaps."""
        planes = crops_to_planes(crops_bgr)
        outputs = []
        for start in range(0, len(planes), self.batch_size):
            chunk = planes[start:start + self.batch_size]
            executor = self._executor(len(chunk))
            executor.arg_dict['data'][:] = chunk
            executor.forward(is_train=False)
            outputs.append(executor.outputs[0].asnumpy())
        if not outputs:
            return np.zeros((0,) + self.heatmap_shape, dtype=np.float32)
        return np.concatenate(outputs)
