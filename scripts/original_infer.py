"""The original toolkit's per-face inference path, kept as the reference the fast paths are
measured and tested against (scripts/bench_infer.py, tests/test_infer_speed_paths.py).

Its demo handler binds a Module for a single 128 x 128 image, and for every face converts the
crop to RGB planes in a uint8 blob, runs one forward, then resizes each of the 68 heatmaps to
128 x 128 and takes its argmax in a Python loop.

MXNet 1.9 binds every CPU inference executor through its MKLDNN subgraph backend (conv + BN +
ReLU fused), so the original code running here gets fused graphs too; `fused=False` binds the
graph as written, as the MXNet 1.3 the original targeted ran it.
"""
import contextlib
import os

import cv2
import mxnet as mx
import numpy as np

from symbols.checkpoint import load_inference_checkpoint

# The original's demo handler bound its Module for one 128 x 128 image.
INPUT_SIZE = 128

SUBGRAPH_BACKEND_VARIABLE = 'MXNET_SUBGRAPH_BACKEND'


@contextlib.contextmanager
def unfused_binding():
    """Executors bound inside run the graph as written (MXNet reads the variable at bind)."""
    previous = os.environ.get(SUBGRAPH_BACKEND_VARIABLE)
    os.environ[SUBGRAPH_BACKEND_VARIABLE] = 'NONE'
    try:
        yield
    finally:
        if previous is None:
            del os.environ[SUBGRAPH_BACKEND_VARIABLE]
        else:
            os.environ[SUBGRAPH_BACKEND_VARIABLE] = previous


class PerFaceBaseline:
    """`landmarks(crops)` and `predict(crops)` exactly as the original computes them, one face
    at a time."""

    def __init__(self, prefix, epoch=0, ctx=None, fused=True):
        symbol, arg_params, aux_params = load_inference_checkpoint(prefix, epoch)
        self.ctx = ctx if ctx is not None else mx.cpu()
        self._module = mx.mod.Module(symbol=symbol, context=self.ctx, label_names=None)
        with contextlib.nullcontext() if fused else unfused_binding():
            self._module.bind(for_training=False,
                              data_shapes=[('data', (1, 3, INPUT_SIZE, INPUT_SIZE))])
        self._module.set_params(arg_params, aux_params)

    def _heatmaps(self, crop_bgr):
        blob = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
        blob[0] = np.transpose(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB), (2, 0, 1))
        self._module.forward(mx.io.DataBatch(data=(mx.nd.array(blob),)), is_train=False)
        return self._module.get_outputs()[-1].asnumpy()[0]

    def predict(self, crops_bgr):
        """(N, 128, 128, 3) BGR crops -> (N, 68, h, w) heatmaps, one forward per face."""
        return np.stack([self._heatmaps(crop) for crop in crops_bgr])

    def landmarks(self, crops_bgr):
        """(N, 68, 2) x/y integer crop pixels: per face a forward, then per landmark a resize
        to the input size and an argmax."""
        faces = []
        for crop in crops_bgr:
            heatmaps = self._heatmaps(crop)
            points = np.zeros((len(heatmaps), 2), dtype=np.float32)
            for landmark, heatmap in enumerate(heatmaps):
                resized = cv2.resize(heatmap, (INPUT_SIZE, INPUT_SIZE))
                row, col = np.unravel_index(np.argmax(resized), resized.shape)
                points[landmark] = (col, row)
            faces.append(points)
        return np.stack(faces)
