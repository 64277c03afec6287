"""The ESSH face detector: an MXNet checkpoint plus the original's decoding."""
import cv2
import mxnet as mx
import numpy as np

from data.images import to_bgr8
from symbols.checkpoint import checked_params

from .anchors import STRIDES
from .decode import scale_candidates, select_detections
from .face import faces_from_arrays

# Per-channel means of the training images, in B, G, R order.
PIXEL_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
NUM_OUTPUTS = 3 * len(STRIDES)
# Five 2x2 poolings: a smaller image leaves the stride-32 branch without a single cell.
MIN_IMAGE_SIDE = 32


def image_tensor(image_bgr):
    """(1, 3, H, W) float32 network input: RGB planes of the float image minus the means."""
    image = to_bgr8(image_bgr).astype(np.float32) - PIXEL_MEANS_BGR
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None])


def default_context():
    """The CPU, as everywhere else in the toolkit: a GPU is used only when passed."""
    return mx.cpu()


class ESSHDetector:
    """Runs an ESSH graph (`essh.symbol.get_essh_symbol()` or a released essh-symbol.json)
    whose nine outputs are score, box and point maps for strides 32, 16 and 8."""
    name = 'essh'

    def __init__(self, symbol, arg_params, aux_params, ctx=None, source='ESSH model'):
        if len(symbol.list_outputs()) != NUM_OUTPUTS:
            raise ValueError('%s: expected %d outputs (score, box, points for strides %s), got %d'
                             % (source, NUM_OUTPUTS, STRIDES, len(symbol.list_outputs())))
        # Any input side works for the check: every ESSH parameter shape is size-independent.
        checked_params(symbol, arg_params, aux_params, source, 640)
        self.ctx = default_context() if ctx is None else ctx
        self._module = mx.mod.Module(symbol=symbol, data_names=['data'], label_names=None,
                                     context=self.ctx)
        self._module.bind(data_shapes=[('data', (1, 3, 640, 640))], for_training=False)
        self._module.set_params(arg_params, aux_params, allow_extra=True)

    def forward(self, image_bgr):
        """The network's nine outputs for one image, as numpy arrays."""
        data = mx.nd.array(image_tensor(image_bgr), ctx=self.ctx)
        # Module re-binds itself when the image size changes.
        self._module.forward(mx.io.DataBatch(data=[data], provide_data=[('data', data.shape)]),
                             is_train=False)
        return [out.asnumpy() for out in self._module.get_outputs()]

    def detect(self, image_bgr, threshold=0.4, scales=(1.0,)):
        """Faces scoring >= threshold, best first, with five points each.

        `image_bgr`: any form data.images.to_bgr8 takes (grey/BGR/BGRA; uint8, uint16 or float
        in [0, 1]). `scales` resizes the image before each forward pass (an image pyramid); as in the
        original, with several scales the stride-32 maps of the last scale are not used.
        A scale that makes the image smaller than MIN_IMAGE_SIDE is skipped.
        """
        image = to_bgr8(image_bgr).astype(np.float32)
        candidates = []
        for scale in scales:
            scaled = image if scale == 1.0 else cv2.resize(
                image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            if min(scaled.shape[:2]) < MIN_IMAGE_SIDE:
                continue
            strides = STRIDES
            if len(scales) > 1 and scale == scales[-1]:
                strides = tuple(s for s in STRIDES if s != 32)
            candidates.append(scale_candidates(self.forward(scaled), scaled.shape[:2],
                                               image_scale=scale, strides=strides))
        if not candidates:
            return []
        boxes, scores, points = select_detections(candidates, threshold)
        return faces_from_arrays(boxes, scores, points)
