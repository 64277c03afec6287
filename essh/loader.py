"""Choosing the face detector: the ESSH checkpoint when present, else the Haar fallback."""
import logging
import os

from symbols import checkpoint

from .detector import ESSHDetector
from .fallback import HaarDetector

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = 'essh'
CHECKPOINT_EPOCH = 0
CHECKPOINT_FILES = (os.path.basename(checkpoint.symbol_path(CHECKPOINT_PREFIX)),
                    os.path.basename(checkpoint.params_path(CHECKPOINT_PREFIX, CHECKPOINT_EPOCH)))


def load_essh(model_dir, ctx=None):
    """The ESSH detector from model_dir/essh-symbol.json + essh-0000.params (the released
    graph is loaded as saved, not rebuilt)."""
    prefix = os.path.join(model_dir, CHECKPOINT_PREFIX)
    symbol = checkpoint.load_symbol(checkpoint.symbol_path(prefix))
    arg_params, aux_params = checkpoint.load_params(
        checkpoint.params_path(prefix, CHECKPOINT_EPOCH))
    return ESSHDetector(symbol, arg_params, aux_params, ctx=ctx, source=prefix)


def load_detector(model_dir='essh-model', ctx=None, fallback=True):
    """A face detector with `.name` ('essh' or 'opencv-haar') and
    `.detect(image_bgr, threshold=0.4) -> [Face]`.

    ESSH when model_dir holds its checkpoint; otherwise, with fallback, OpenCV's Haar
    cascade; without fallback a ValueError names the missing files. ctx: an MXNet context
    (default: GPU 0 when there is one, else CPU); the fallback always runs on the CPU.
    """
    missing = [f for f in CHECKPOINT_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if not missing:
        detector = load_essh(model_dir, ctx)
        logger.info('face detector: essh (%s)', os.path.abspath(model_dir))
        return detector
    if not fallback:
        raise ValueError('ESSH model not found: %s missing in %s'
                         % (', '.join(missing), os.path.abspath(model_dir)))
    logger.warning('face detector: opencv-haar fallback (no %s in %s); boxes only, no points',
                   ', '.join(missing), os.path.abspath(model_dir))
    return HaarDetector()
