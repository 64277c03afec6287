"""Face detection for alignment: the bundled MTCNN cascade (the default), the original's ESSH
detector (VGG16 SSH with five points) when its weights are supplied, and OpenCV's Haar cascade
when asked for; `load_detector(name)` picks one."""
from .detector import ESSHDetector
from .face import Face
from .fallback import HaarDetector
from .loader import DETECTORS, load_detector
from .mtcnn import MTCNNDetector
from .symbol import get_essh_symbol, initializer

__all__ = ['DETECTORS', 'ESSHDetector', 'Face', 'HaarDetector', 'MTCNNDetector',
           'get_essh_symbol', 'initializer', 'load_detector']
