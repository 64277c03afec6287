"""What a face detector returns, and the image forms detectors accept."""
from collections import namedtuple

import numpy as np

# box: (4,) float32 x1, y1, x2, y2 in image pixels; score: float (higher is surer);
# points: (5, 2) float32 x, y of the two eyes, the nose and the two mouth corners (in the
# order the model was trained with), or None when the detector gives no points.
Face = namedtuple('Face', ['box', 'score', 'points'])


def as_bgr(image):
    """A 3-channel BGR view of a grey (H, W), (H, W, 1), BGR or BGRA image; dtype kept."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        grey = image.reshape(image.shape[:2])
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    raise ValueError('image of shape %s is not a grey, BGR or BGRA image' % (image.shape,))


def as_uint8(image):
    """The image as uint8, values rounded and clipped to 0..255."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def faces_from_arrays(boxes, scores, points=None):
    """Face tuples, best first (inputs already sorted by descending score)."""
    return [Face(np.asarray(boxes[i], dtype=np.float32), float(scores[i]),
                 None if points is None else np.asarray(points[i], dtype=np.float32))
            for i in range(len(scores))]
