"""Our heatmap network beside dlib's 68-point shape predictor on one packed test set.

Box choice: per record both models get the same face box, the bounding box of the ground-truth
68 points in record-image pixels, so neither depends on a detector. dlib fits its regression
trees inside that rectangle (rounded to whole pixels, as dlib rectangles are); our network gets
the square of side 1.2 x max(w, h) around the box's integer centre warped onto 128 x 128 (the
crop FaceAligner makes from a detector box without five points) and its decoded points are
mapped back to the record image. Neither gets the five-point alignment or top shift of the
published protocol, so the two NMEs compare with each other, not with the published table.
Both are scored by evaluation.metrics.nme: eye-centre normaliser for 2D, box for 3D.
Timings are per face at batch 1, from the record image to landmarks, after one untimed run.
"""
import os
import struct
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from data.codec import decode_heatmaps
from data.landmarks import NUM_LANDMARKS
from data.records import RecordFile
from data.recordio import unpack_record
from data.transforms import box_transform, invert_affine, warp_points
from evaluation import metrics

from .crop import CROP_SIZE

DLIB_INSTALL_HINT = 'pip install -r requirements-dlib.txt'
NORMALISER = {'2d': 'eye', '3d': 'box'}


def load_dlib_predictor(model_path=None):
    """dlib's 68-point shape predictor (the face_recognition_models file by default). dlib is
    an optional dependency, imported only here; ValueError with the install command when it is
    missing."""
    try:
        import dlib
    except ImportError:
        raise ValueError('dlib is not installed; run `%s`' % DLIB_INSTALL_HINT) from None
    if model_path is None:
        try:
            import face_recognition_models
        except ImportError:
            raise ValueError('face_recognition_models (dlib\'s 68-point model) is not '
                             'installed; run `%s`' % DLIB_INSTALL_HINT) from None
        model_path = face_recognition_models.pose_predictor_model_location()
    if not os.path.isfile(model_path):
        raise ValueError('%s: no such dlib shape predictor file' % model_path)
    predictor = dlib.shape_predictor(model_path)

    def landmarks(image_bgr, box):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = predictor(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB),
                          dlib.rectangle(x1, y1, x2, y2))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return landmarks


def network_landmarks(model, image_bgr, box, decode='subpixel'):
    """(68, 2) landmarks of one face from `model.predict` given its box."""
    m_crop = box_transform(box, CROP_SIZE)
    crop = cv2.warpAffine(image_bgr, m_crop, (CROP_SIZE, CROP_SIZE), borderValue=0.0)
    points = decode_heatmaps(model.predict(crop[np.newaxis]), CROP_SIZE, decode)[0]
    return warp_points(points, invert_affine(m_crop))


@dataclass
class Comparison:
    """Per-image predictions of both models on one test set, (x, y) record-image pixels."""
    landmark_type: str
    record_ids: list = field(default_factory=list)
    ground_truth: list = field(default_factory=list)
    ours: list = field(default_factory=list)
    dlib: list = field(default_factory=list)
    seconds: dict = field(default_factory=lambda: {'ours': 0.0, 'dlib': 0.0})
    skipped: list = field(default_factory=list)   # (record id, reason)

    def mean_nme(self, which):
        points = np.asarray(getattr(self, which), dtype=np.float64)
        return float(metrics.nme(points.reshape(-1, NUM_LANDMARKS, 2),
                                 np.asarray(self.ground_truth).reshape(-1, NUM_LANDMARKS, 2),
                                 NORMALISER[self.landmark_type]).mean())

    def ms_per_face(self, which):
        return 1000.0 * self.seconds[which] / len(self.record_ids)

    def summary_lines(self):
        lines = ['%d images, %d skipped; NME normalised by %s' % (
            len(self.record_ids), len(self.skipped),
            'eye-centre distance' if self.landmark_type == '2d' else 'sqrt(box w * h)')]
        for which, label in (('ours', 'heatmap network'), ('dlib', 'dlib 68-point')):
            lines.append('%-16s NME %7.3f%%  %8.2f ms/face' % (
                label, 100 * self.mean_nme(which), self.ms_per_face(which)))
        return lines


def compare_with_dlib(model, dlib_landmarks, rec_path, landmark_type='2d', decode='subpixel',
                      progress=True):
    """Run both models on every record of `rec_path` (see the module docstring for the box
    each gets). `model.predict` as HeatmapModel's; `dlib_landmarks` from load_dlib_predictor.
    Unreadable records are skipped and listed."""
    if landmark_type not in NORMALISER:
        raise ValueError('unknown landmark type %r; valid: 2d, 3d' % (landmark_type,))
    records = RecordFile(rec_path)
    result = Comparison(landmark_type)
    try:
        for key, offset in tqdm(list(zip(records.keys, records.offsets)), disable=not progress,
                                desc=os.path.basename(rec_path), unit='face'):
            try:
                image, gt_points, _ = unpack_record(records.read(offset))
            except (ValueError, struct.error, cv2.error) as exc:
                result.skipped.append((int(key), 'unreadable record: %s' % exc))
                continue
            box = np.concatenate([gt_points.min(axis=0), gt_points.max(axis=0)])
            if not result.record_ids:
                # Untimed first run of each: one-off set-up (kernel selection, allocation).
                network_landmarks(model, image, box, decode)
                dlib_landmarks(image, box)
            start = time.perf_counter()
            result.ours.append(network_landmarks(model, image, box, decode))
            middle = time.perf_counter()
            result.dlib.append(dlib_landmarks(image, box))
            result.seconds['ours'] += middle - start
            result.seconds['dlib'] += time.perf_counter() - middle
            result.record_ids.append(int(key))
            result.ground_truth.append(np.asarray(gt_points, dtype=np.float64))
    finally:
        records.close()
    if not result.record_ids:
        raise ValueError('%s: no readable records (%d skipped)' % (rec_path, len(result.skipped)))
    return result
