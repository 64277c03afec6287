"""Face alignment on arbitrary photos: detect faces, crop each, predict 68 landmarks."""
import os
from dataclasses import dataclass

import numpy as np

import essh
from data.geometry import (DETECTION_THRESHOLD, TOP_SHIFT, compose_affine, crop_detected_face,
                           crop_to_image, protocol_crop)
from data.images import to_bgr8

from .model import load_heatmap_model

_MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models')
# The models this repository ships, per landmark type; what FaceAligner(), test.py and
# evaluate.py use by default. '2d': 300-W convention (jaw on the visible silhouette); '3d':
# AFLW2000-3D convention (projected 3D points, the occluded jaw side included).
DEFAULT_MODELS = {'2d': os.path.join(_MODELS_DIR, 'hg1d4-resnet-m025-300w', 'model'),
                  '3d': os.path.join(_MODELS_DIR, 'hg1d4-resnet-m025-3d', 'model')}
DEFAULT_MODEL = DEFAULT_MODELS['2d']
# The box top shift each shipped model's training records were laid out with (the 300W and
# AFLW2000-3D protocols): the refinement pass crops with it.
REFINE_TOP_SHIFTS = {'2d': TOP_SHIFT['300W'], '3d': TOP_SHIFT['AFLW2000-3D']}


def default_model(landmark_type):
    """Checkpoint prefix of the shipped model of `landmark_type` ('2d' or '3d')."""
    if landmark_type not in DEFAULT_MODELS:
        raise ValueError('unknown landmark type %r; valid: %s'
                         % (landmark_type, ', '.join(sorted(DEFAULT_MODELS))))
    return DEFAULT_MODELS[landmark_type]


@dataclass
class AlignedFace:
    """One face: detector box (x1, y1, x2, y2) and score, 68 (x, y) landmarks in the original
    image, the BGR crop the network saw (input size x input size) and `crop_transform`, the
    2 x 3 map from image to crop pixels."""
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    crop: np.ndarray
    crop_transform: np.ndarray

    def to_dict(self):
        return {'box': [float(v) for v in self.box], 'score': float(self.score),
                'landmarks': np.round(self.landmarks, 2).tolist()}


class FaceAligner:
    """`FaceAligner(prefix, epoch).get_landmarks(image)` -> list of AlignedFace; `prefix`
    defaults to the shipped model of `landmark_type` ('2d': 300-W jaw on the silhouette,
    '3d': AFLW2000-3D projected 3D points; DEFAULT_MODELS).

    `backend` 'mxnet' runs the checkpoint on `ctx` (an mx.Context, default CPU);
    'onnxruntime' runs it with onnxruntime on the CPU (`prefix` may then be an exported
    `.onnx` file). `decode` 'subpixel' refines each peak at heatmap resolution; 'argmax' is
    the original's integer-pixel decoding (slower: 68 resizes per face). `detector` is
    anything with `.detect(image_bgr, threshold)` returning essh.Face-like objects, or a name
    for essh.load_detector ('mtcnn', 'essh', 'haar'); by default the bundled MTCNN, or ESSH
    when `essh_dir` (its checkpoint folder, also where 'essh' looks) is given.
    `flip_test` averages each face's maps with those of its mirror image (FlipTest).
    `refine` predicts a second time on the protocol crop of the first pass's landmarks (the
    five-point alignment and top-shifted box that training crops use, with `refine_top_shift`),
    so the network sees the geometry it was trained on whatever box the detector gave;
    by default the shift of `landmark_type`'s training records (REFINE_TOP_SHIFTS).
    """

    def __init__(self, prefix=None, epoch=0, ctx=None, detector=None, batch_size=16,
                 threshold=DETECTION_THRESHOLD, decode='subpixel', essh_dir=None,
                 backend='mxnet', flip_test=False, refine=True, refine_top_shift=None,
                 landmark_type='2d'):
        prefix = prefix or default_model(landmark_type)
        self.landmark_type = landmark_type
        self.model = load_heatmap_model(prefix, epoch, backend=backend, ctx=ctx,
                                        batch_size=batch_size, flip_test=flip_test)
        self.codec = self.model.codec(decode)
        if detector is None:
            detector = 'mtcnn' if essh_dir is None else 'essh'
        if isinstance(detector, str):
            detector = essh.load_detector(detector, essh_dir if detector == 'essh' else None,
                                          ctx=ctx)
        self.detector = detector
        self.threshold = threshold
        self.refine = refine
        self.refine_top_shift = (REFINE_TOP_SHIFTS[landmark_type] if refine_top_shift is None
                                 else refine_top_shift)

    def get_landmarks(self, image):
        """Faces of one image (grey, BGR or BGRA; 8/16-bit or float); [] when there is none."""
        return self.get_landmarks_batch([image])[0]

    def get_landmarks_batch(self, images):
        """One list of AlignedFace per image; all faces go through the network together."""
        faces, crops = [], []
        bgr_images = [to_bgr8(image) for image in images]
        for index, bgr in enumerate(bgr_images):
            for face in self.detector.detect(bgr, threshold=self.threshold):
                faces.append((index, face))
                crops.append(crop_detected_face(bgr, face, self.detector, self.threshold,
                                                self.codec.input_size))
        results = [[] for _ in images]
        if not crops:
            return results
        landmarks = self._landmarks(crops)
        if self.refine:
            again = [self._refine_crop(bgr_images[index], points)
                     for (index, _), points in zip(faces, landmarks)]
            redo = [i for i, crop in enumerate(again) if crop is not None]
            if redo:
                for i, points in zip(redo, self._landmarks([again[i] for i in redo])):
                    crops[i], landmarks[i] = again[i], points
        for (index, face), (crop, m_align, m_crop), points in zip(faces, crops, landmarks):
            results[index].append(AlignedFace(
                box=np.asarray(face.box, dtype=np.float64)[:4], score=float(face.score),
                landmarks=points, crop=crop, crop_transform=compose_affine(m_align, m_crop)))
        return results

    def _refine_crop(self, bgr, points):
        """The protocol crop of first-pass landmarks, or None when their five points are
        degenerate (coincide), which leaves the first pass as the answer."""
        try:
            return protocol_crop(bgr, points, self.refine_top_shift, self.codec.input_size)
        except ValueError:
            return None

    def _landmarks(self, crops):
        """Image-pixel landmarks of (crop, M_align, M_crop) triples, all in one forward."""
        points = self.codec.decode(self.model.predict(np.stack([c[0] for c in crops])))
        return [crop_to_image(p, m_align, m_crop)
                for p, (_, m_align, m_crop) in zip(points, crops)]
