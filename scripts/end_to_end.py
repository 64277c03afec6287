"""Photo in, 68 points out: our detector + model (FaceAligner) against dlib's HOG detector + its
68-point shape predictor, on a folder of photos with `.pts` ground truth or on the record
images of a `.rec` test set (`compare_dlib.py --end-to-end`).

Each pipeline finds faces on its own. The face that counts is the detection whose box centre
lies inside the ground-truth landmark box, nearest to its centre; no such detection is a
miss. Misses are counted for both, and scored two ways: left out (NME over the faces both
pipelines found) and, over all faces, as the pipeline's landmarks from the ground-truth box
(ours: the landmark-box crop, then the refinement pass; dlib: the box in its detector's
convention), counted as a failure whatever that NME. NME: eye-centre normaliser, unfloored
ground truth (evaluation.metrics.nme). On the faces both found, the summary also gives each
pipeline's NME by face region and its jaw error along and across the contour, which is where
a heatmap network and a shape regressor such as dlib's differ most. Last comes the mean of
the per-photo differences, ours - dlib, with its standard error: the photos' shared
difficulty cancels in it, so it says whether a gap is larger than chance.
"""
import glob
import os
import time
from dataclasses import dataclass, field

import numpy as np

from console import progress as progress_bar
from data.images import read_image
from data.readers import read_pts
from data.recordio import unpack_record
from data.records import RecordFile
from essh.face import Face
from evaluation import metrics
from scripts.dlib_peer import dlib_detector_box, load_dlib_detector, load_dlib_predictor

FAILURE = 0.10
PIPELINES = ('ours', 'dlib')


def photo_faces(source):
    """(name, load) of every face of `source`; load() -> (BGR image, (68, 2) x/y ground truth).

    `source` is a folder (every `.pts` with an image beside it) or a `.rec` test set (every
    record image with its label)."""
    if source.endswith('.rec'):
        return _record_faces(source)
    found = []
    for pts in sorted(glob.glob(os.path.join(glob.escape(source), '*.pts'))):
        stem = pts[:-4]
        image = next((stem + ext for ext in ('.jpg', '.jpeg', '.png', '.bmp')
                      if os.path.isfile(stem + ext)), None)
        if image is not None:
            found.append((os.path.basename(stem), _photo_loader(image, pts)))
    if not found:
        raise ValueError('%s: no .pts files with an image beside them' % source)
    return found


def _photo_loader(image_path, pts_path):
    return lambda: (read_image(image_path), read_pts(pts_path))


def _record_faces(rec_path):
    records = RecordFile(rec_path)
    if not len(records):
        raise ValueError('%s: no records' % rec_path)

    def loader(offset):
        def load():
            image, points, _ = unpack_record(records.read(offset))
            return image, points.astype(np.float64)
        return load
    return [('record %d' % key, loader(offset))
            for key, offset in zip(records.keys, records.offsets)]


def matching_box(boxes, gt_points):
    """Index of the box whose centre is inside the landmark box, nearest its centre; or None."""
    low, high = gt_points.min(axis=0), gt_points.max(axis=0)
    best, best_distance = None, None
    for index, box in enumerate(boxes):
        centre = (np.asarray(box[:2]) + np.asarray(box[2:4])) / 2
        if np.all(centre >= low) and np.all(centre <= high):
            distance = np.linalg.norm(centre - (low + high) / 2)
            if best is None or distance < best_distance:
                best, best_distance = index, distance
    return best


class _GivenBox:
    """A detector that reports one given box (no points): the ground-truth fallback."""
    name = 'ground-truth box'

    def __init__(self, box):
        self.box = np.asarray(box, dtype=np.float32)

    def detect(self, image_bgr, threshold=None):
        return [Face(self.box, 1.0, None)]


@dataclass
class EndToEnd:
    """Per-photo landmarks of both pipelines; `missed[p][i]` says pipeline p missed photo i."""
    names: list = field(default_factory=list)
    ground_truth: list = field(default_factory=list)
    points: dict = field(default_factory=lambda: {p: [] for p in PIPELINES})
    missed: dict = field(default_factory=lambda: {p: [] for p in PIPELINES})
    seconds: dict = field(default_factory=lambda: {p: 0.0 for p in PIPELINES})

    def point_errors(self, pipeline):
        """(photos, 68) normalised errors of each point."""
        return metrics.point_errors(np.array(self.points[pipeline]),
                                    np.array(self.ground_truth), 'eye')

    def errors(self, pipeline):
        return self.point_errors(pipeline).mean(axis=1)

    def region_line(self, pipeline, both):
        """NME by face region on the faces both found, and the jaw's error split along and
        across its contour (metrics.jaw_error_components)."""
        pred, gt = np.array(self.points[pipeline])[both], np.array(self.ground_truth)[both]
        regions = metrics.nme_by_region(self.point_errors(pipeline)[both])
        along, across, ends = metrics.jaw_error_components(pred, gt, 'eye')
        return ('      both-found by region: %s; jaw along %.3f%% / across %.3f%%, ends %+.2f%% '
                'towards the chin' % ('  '.join('%s %.3f%%' % (name, value * 100)
                                                for name, value in regions.items()),
                                      along.mean() * 100, across.mean() * 100, ends.mean() * 100))

    def summary_lines(self):
        both = ~(np.array(self.missed['ours']) | np.array(self.missed['dlib']))
        lines = ['%d photos; NME by eye-centre distance, unfloored ground truth; a miss is '
                 'scored from the ground-truth box and counted as a failure' % len(self.names)]
        errors_of = {pipeline: self.errors(pipeline) for pipeline in PIPELINES}
        for pipeline in PIPELINES:
            errors, missed = errors_of[pipeline], np.array(self.missed[pipeline])
            failures = (errors > FAILURE) | missed
            lines.append('%-5s misses %3d  NME both-found %6.3f%% (%d)  all %6.3f%%  failures '
                         '>%d%% %5.2f%%  %7.1f ms/photo' % (
                             pipeline, missed.sum(), errors[both].mean() * 100, both.sum(),
                             errors.mean() * 100, FAILURE * 100, failures.mean() * 100,
                             self.seconds[pipeline] * 1000 / len(self.names)))
            if both.any():
                lines.append(self.region_line(pipeline, both))
        ours, dlib = errors_of['ours'], errors_of['dlib']
        lines.append('paired by photo, ours - dlib: both-found %+.3f%% (SE %.3f)  all %+.3f%% '
                     '(SE %.3f)' % tuple(100 * value for value in
                                         metrics.paired_difference(ours[both], dlib[both]) +
                                         metrics.paired_difference(ours, dlib)))
        median, ours_lower = metrics.paired_spread(ours[both], dlib[both])
        ours_jaw, dlib_jaw = (metrics.region_errors(self.point_errors(pipeline))['jaw'][both]
                              for pipeline in ('ours', 'dlib'))
        _, jaw_lower = metrics.paired_spread(ours_jaw, dlib_jaw)
        lines.append('both-found per photo: median ours - dlib %+.3f%%; ours lower on %.0f%% '
                     'of the photos, on the jaw on %.0f%%'
                     % (100 * median, 100 * ours_lower, 100 * jaw_lower))
        return lines

    def ced_curves(self):
        """{label: per-photo errors} with misses as errors past any threshold."""
        return {pipeline: np.where(self.missed[pipeline], np.inf, self.errors(pipeline))
                for pipeline in PIPELINES}


def compare_end_to_end(aligner, source, dlib_model=None, progress=True):
    """Run both pipelines over the photos of `source`, a folder or a `.rec` (see the module
    docstring)."""
    dlib_boxes, dlib_landmarks = load_dlib_detector(), load_dlib_predictor(dlib_model)
    result = EndToEnd()
    for name, load in progress_bar(photo_faces(source), enabled=progress,
                                   desc=os.path.basename(os.path.normpath(source)),
                                   unit='photo'):
        image, gt = load()
        box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])
        start = time.perf_counter()
        faces = aligner.get_landmarks(image)
        middle = time.perf_counter()
        found = dlib_boxes(image)
        index = matching_box(found, gt)
        dlib_points = dlib_landmarks(image, found[index] if index is not None
                                     else dlib_detector_box(box))
        result.seconds['ours'] += middle - start
        result.seconds['dlib'] += time.perf_counter() - middle
        ours = matching_box([f.box for f in faces], gt)
        if ours is None:
            detector, aligner.detector = aligner.detector, _GivenBox(box)
            try:
                ours_points = aligner.get_landmarks(image)[0].landmarks
            finally:
                aligner.detector = detector
        else:
            ours_points = faces[ours].landmarks
        result.names.append(name)
        result.ground_truth.append(gt)
        result.points['ours'].append(ours_points)
        result.points['dlib'].append(dlib_points)
        result.missed['ours'].append(ours is None)
        result.missed['dlib'].append(index is None)
    return result
