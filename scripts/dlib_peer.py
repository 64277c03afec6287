"""Our heatmap network beside dlib's 68-point shape predictor on one packed test set.

Boxes: per record both models get the same face box, the bounding box of the ground-truth 68
points in record-image pixels, so neither depends on a detector. Each model then turns that box
into its own input the way it was trained to see faces, with a convention measured on the
300-W training faces (never on the test set):

- our network: the published protocol's crop expressed on the box
  (data.geometry.landmark_box_transform): its top edge raised by LANDMARK_BOX_TOP_SHIFT of its
  height, then the 1.2 x max(w, h) square around its integer centre warped onto the network
  input; decoded points are mapped back to the record image.
- dlib: the box moved and resized to where dlib's own HOG face detector puts its box on the
  same faces (DLIB_DETECTOR_BOX, re-measured by `measure_dlib_box_convention`), because the
  predictor was trained from those boxes. dlib on the raw landmark box is reported beside it.

Records are stored five-point aligned, so neither model gets a rotation it could not know from
the box. Both are scored by evaluation.metrics.nme: eye-centre normaliser for 2D, box for 3D.
Timings are per face at batch 1, from the record image to landmarks, after one untimed run.
"""
import os
import struct
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from console import progress as progress_bar
from data.geometry import invert_affine, landmark_box_transform, warp_points
from data.landmarks import NUM_LANDMARKS
from data.records import RecordFile
from data.recordio import unpack_record
from data.shape_prior import decode_landmarks
from evaluation import metrics

DLIB_INSTALL_HINT = 'pip install -r requirements-dlib.txt'
# dlib's HOG detector box relative to the landmark box (centre offset over w and h, then width
# and height ratios): medians over the 576 of the first 600 300-W training records where the
# detector (upsampling once) found the face.
DLIB_DETECTOR_BOX = (-0.001, -0.096, 1.069, 1.122)


def _import_dlib():
    """dlib, an optional dependency imported only here; ValueError with the install command
    when it is missing."""
    try:
        import dlib
    except ImportError:
        raise ValueError('dlib is not installed; run `%s`' % DLIB_INSTALL_HINT) from None
    return dlib


def load_dlib_detector():
    """dlib's HOG face detector, upsampling the image once: image_bgr -> [(x1, y1, x2, y2)]
    float64 boxes."""
    detector = _import_dlib().get_frontal_face_detector()

    def boxes(image_bgr):
        found = detector(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), 1)
        return [np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) for r in found]
    return boxes


def load_dlib_predictor(model_path=None):
    """dlib's 68-point shape predictor (the face_recognition_models file by default):
    (image_bgr, box) -> (68, 2) x/y."""
    dlib = _import_dlib()
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


def dlib_detector_box(box, convention=DLIB_DETECTOR_BOX):
    """The landmark box (x1, y1, x2, y2) moved and resized to dlib's detector convention."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    centre_x = (x1 + x2) / 2 + convention[0] * width
    centre_y = (y1 + y2) / 2 + convention[1] * height
    half_w, half_h = convention[2] * width / 2, convention[3] * height / 2
    return np.array([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h])


def measure_dlib_box_convention(rec_path, limit=600, progress=True):
    """DLIB_DETECTOR_BOX re-measured: (median offsets and ratios, faces matched) of dlib's HOG
    detector boxes against the landmark boxes of the first `limit` records of `rec_path`. A
    detection counts when its centre is within 0.3 box sides of the landmark box centre."""
    detect = load_dlib_detector()
    records = RecordFile(rec_path)
    rows = []
    try:
        for offset in progress_bar(records.offsets[:limit], enabled=progress, unit='face'):
            image, points, _ = unpack_record(records.read(offset))
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            width, height = x2 - x1, y2 - y1
            for left, top, right, bottom in detect(image):
                dx = ((left + right) / 2 - (x1 + x2) / 2) / width
                dy = ((top + bottom) / 2 - (y1 + y2) / 2) / height
                if abs(dx) < 0.3 and abs(dy) < 0.3:
                    rows.append((dx, dy, (right - left) / width, (bottom - top) / height))
                    break
    finally:
        records.close()
    if not rows:
        raise ValueError('%s: dlib\'s detector found none of the faces' % rec_path)
    return tuple(float(v) for v in np.median(np.array(rows), axis=0)), len(rows)


def network_landmarks(model, image_bgr, box, decode='subpixel', shape_prior=None):
    """(68, 2) landmarks of one face from `model.predict` given its landmark box, refined by
    `shape_prior` (data.shape_prior.ShapePrior) when given."""
    codec = model.codec(decode)
    m_crop = landmark_box_transform(box, codec.input_size)
    crop = cv2.warpAffine(image_bgr, m_crop, (codec.input_size, codec.input_size),
                          borderValue=0.0)
    points = decode_landmarks(codec, model.predict(crop[np.newaxis]), shape_prior)[0]
    return warp_points(points, invert_affine(m_crop))


@dataclass
class Comparison:
    """Per-image predictions of both models on one test set, (x, y) record-image pixels."""
    landmark_type: str
    record_ids: list = field(default_factory=list)
    ground_truth: list = field(default_factory=list)
    ours: list = field(default_factory=list)
    dlib: list = field(default_factory=list)
    dlib_raw_box: list = field(default_factory=list)
    seconds: dict = field(default_factory=lambda: {'ours': 0.0, 'dlib': 0.0})
    skipped: list = field(default_factory=list)   # (record id, reason)

    def mean_nme(self, which):
        points = np.asarray(getattr(self, which), dtype=np.float64)
        return float(metrics.nme(points.reshape(-1, NUM_LANDMARKS, 2),
                                 np.asarray(self.ground_truth).reshape(-1, NUM_LANDMARKS, 2),
                                 metrics.NORMALISER[self.landmark_type]).mean())

    def ms_per_face(self, which):
        return 1000.0 * self.seconds[which] / len(self.record_ids)

    def summary_lines(self):
        lines = ['%d images, %d skipped; NME normalised by %s' % (
            len(self.record_ids), len(self.skipped),
            'eye-centre distance' if self.landmark_type == '2d' else 'sqrt(box w * h)')]
        for which, label in (('ours', 'heatmap network'), ('dlib', 'dlib 68-point')):
            lines.append('%-16s NME %7.3f%%  %8.2f ms/face' % (
                label, 100 * self.mean_nme(which), self.ms_per_face(which)))
        lines.append('(dlib on the raw landmark box instead of its detector\'s convention: '
                     'NME %.3f%%)' % (100 * self.mean_nme('dlib_raw_box')))
        return lines


def compare_with_dlib(model, dlib_landmarks, rec_path, landmark_type='2d', decode='subpixel',
                      progress=True, shape_prior=None):
    """Run both models on every record of `rec_path` (see the module docstring for the box
    each gets). `model.predict` as HeatmapModel's; `dlib_landmarks` from load_dlib_predictor.
    Unreadable records are skipped and listed."""
    if landmark_type not in metrics.NORMALISER:
        raise ValueError('unknown landmark type %r; valid: 2d, 3d' % (landmark_type,))
    records = RecordFile(rec_path)
    result = Comparison(landmark_type)
    try:
        for key, offset in progress_bar(list(zip(records.keys, records.offsets)),
                                        enabled=progress, desc=os.path.basename(rec_path),
                                        unit='face'):
            try:
                image, gt_points, _ = unpack_record(records.read(offset))
            except (ValueError, struct.error, cv2.error) as exc:
                result.skipped.append((int(key), 'unreadable record: %s' % exc))
                continue
            box = np.concatenate([gt_points.min(axis=0), gt_points.max(axis=0)])
            dlib_box = dlib_detector_box(box)
            if not result.record_ids:
                # Untimed first run of each: one-off set-up (kernel selection, allocation).
                network_landmarks(model, image, box, decode, shape_prior)
                dlib_landmarks(image, dlib_box)
            start = time.perf_counter()
            result.ours.append(network_landmarks(model, image, box, decode, shape_prior))
            middle = time.perf_counter()
            result.dlib.append(dlib_landmarks(image, dlib_box))
            result.seconds['ours'] += middle - start
            result.seconds['dlib'] += time.perf_counter() - middle
            result.dlib_raw_box.append(dlib_landmarks(image, box))
            result.record_ids.append(int(key))
            result.ground_truth.append(np.asarray(gt_points, dtype=np.float64))
    finally:
        records.close()
    if not result.record_ids:
        raise ValueError('%s: no readable records (%d skipped)' % (rec_path, len(result.skipped)))
    return result
