"""Choosing the face detector by name: the bundled MTCNN (default), the original's ESSH, or
OpenCV's Haar cascade. Nothing falls back to another detector: missing or unusable weights
are a one-line ValueError naming the file."""
import logging
import os

import mxnet as mx

from symbols import checkpoint

from .detector import ESSHDetector
from .fallback import HaarDetector
from .mtcnn import MODEL_DIR as MTCNN_DIR
from .mtcnn import MTCNNDetector

logger = logging.getLogger(__name__)

DETECTORS = ('mtcnn', 'essh', 'haar')
ESSH_DIR = 'essh-model'
CHECKPOINT_PREFIX = 'essh'
CHECKPOINT_EPOCH = 0
CHECKPOINT_FILES = (os.path.basename(checkpoint.symbol_path(CHECKPOINT_PREFIX)),
                    os.path.basename(checkpoint.params_path(CHECKPOINT_PREFIX, CHECKPOINT_EPOCH)))


def load_essh(model_dir, ctx=None):
    """The ESSH detector from model_dir/essh-symbol.json + essh-0000.params (the released
    graph is loaded as saved, not rebuilt)."""
    missing = [f for f in CHECKPOINT_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        raise ValueError('ESSH model not found: %s missing in %s (the original\'s ESSH weights '
                         'are not bundled; the bundled detector is mtcnn)'
                         % (', '.join(missing), os.path.abspath(model_dir)))
    prefix = os.path.join(model_dir, CHECKPOINT_PREFIX)
    symbol = checkpoint.load_symbol(checkpoint.symbol_path(prefix))
    arg_params, aux_params = checkpoint.load_params(
        checkpoint.params_path(prefix, CHECKPOINT_EPOCH))
    return ESSHDetector(symbol, arg_params, aux_params, ctx=ctx, source=prefix)


def check_context(ctx):
    """ValueError unless `ctx` is None (the default device) or an mx.Context: a string such as
    'gpu' is not mapped to one, since which GPU it means would be a guess."""
    if ctx is not None and not isinstance(ctx, mx.Context):
        raise ValueError('ctx must be an mx.Context such as mx.cpu() or mx.gpu(0), got %r '
                         '(a string is not mapped: which GPU it means would be a guess)' % (ctx,))


def load_detector(name='mtcnn', model_dir=None, ctx=None):
    """A face detector with `.name` and `.detect(image_bgr, threshold) -> [Face]`.

    name: 'mtcnn' (default): the bundled MTCNN cascade (boxes and five points), weights from
    model_dir (default models/mtcnn); 'essh': the original's ESSH detector, from model_dir
    (default essh-model/) holding essh-symbol.json and essh-0000.params; 'haar': OpenCV's
    frontal-face cascade (boxes only), model_dir unused. ctx: MXNet context (default the CPU,
    as for the landmark model); Haar always runs on the CPU.
    """
    if name not in DETECTORS:
        raise ValueError('unknown face detector %r (choose from %s)' % (name, ', '.join(DETECTORS)))
    check_context(ctx)
    if name == 'mtcnn':
        model_dir = MTCNN_DIR if model_dir is None else model_dir
        detector = MTCNNDetector(model_dir, ctx=ctx)
    elif name == 'essh':
        model_dir = ESSH_DIR if model_dir is None else model_dir
        detector = load_essh(model_dir, ctx)
    else:
        detector = HaarDetector()
    logger.info('face detector: %s%s', detector.name,
                '' if model_dir is None else ' (%s)' % os.path.abspath(model_dir))
    return detector
