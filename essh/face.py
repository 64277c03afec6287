"""What a face detector returns."""
from collections import namedtuple

import numpy as np

# box: (4,) float32 x1, y1, x2, y2 in image pixels; score: float (higher is surer);
# points: (5, 2) float32 x, y of the two eyes, the nose and the two mouth corners (in the
# order the model was trained with), or None when the detector gives no points.
Face = namedtuple('Face', ['box', 'score', 'points'])


def faces_from_arrays(boxes, scores, points=None):
    """Face tuples, best first (inputs already sorted by descending score)."""
    return [Face(np.asarray(boxes[i], dtype=np.float32), float(scores[i]),
                 None if points is None else np.asarray(points[i], dtype=np.float32))
            for i in range(len(scores))]
