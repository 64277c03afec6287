"""The built-in fallback face detector: OpenCV's bundled frontal-face Haar cascade.

Used when no ESSH checkpoint is available. It gives boxes only (points=None), and is weaker
than ESSH on profile, dark or small faces.
"""
import cv2
import numpy as np

from data.images import to_bgr8

from .boxes import nms
from .decode import NMS_THRESHOLD
from .face import faces_from_arrays

CASCADE_FILE = 'haarcascade_frontalface_default.xml'
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 3
MIN_FACE_SIZE = 30
# The cascade reports an unbounded last-stage weight, not a probability; a logistic centred
# on this weight maps it into (0, 1) so the detectors share one threshold scale. Real faces
# on the smoke-test photos weigh 3..12, stray windows 0..2.
WEIGHT_CENTRE = 2.0


class HaarDetector:
    name = 'opencv-haar'

    def __init__(self):
        path = cv2.data.haarcascades + CASCADE_FILE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ValueError('%s: cannot load the OpenCV Haar cascade' % path)

    def detect(self, image_bgr, threshold=0.4):
        """Faces scoring >= threshold, best first, overlapping windows merged by NMS."""
        grey = cv2.cvtColor(to_bgr8(image_bgr), cv2.COLOR_BGR2GRAY)
        windows, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBOURS,
            minSize=(MIN_FACE_SIZE, MIN_FACE_SIZE), outputRejectLevels=True)
        if len(windows) == 0:
            return []
        windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([windows[:, :2], windows[:, :2] + windows[:, 2:] - 1], axis=1)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(WEIGHT_CENTRE - weights))
        passing = np.flatnonzero(scores >= threshold)
        keep = passing[nms(boxes[passing], scores[passing], NMS_THRESHOLD)]
        return faces_from_arrays(boxes[keep], scores[keep])
