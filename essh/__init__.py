"""Face detection for alignment: the ESSH detector (VGG16 SSH with five points) or, when its
checkpoint is absent, OpenCV's Haar cascade."""
from .detector import ESSHDetector
from .face import Face
from .fallback import HaarDetector
from .loader import load_detector
from .symbol import get_essh_symbol, initializer

__all__ = ['ESSHDetector', 'Face', 'HaarDetector', 'get_essh_symbol', 'initializer',
           'load_detector']
