"""The NME protocol behind the published table (docs/protocol.md), over one test `.rec` file.

Each record is cropped the way the original evaluation does (ground-truth five-point alignment
and box, or with `detector` the detected face as in its `--use-essh` mode), the network's
heatmaps are decoded in the 128 crop and mapped back to record-image pixels, and the ground
truth takes the same round trip with floor (2D) or round (3D) applied in the crop.
"""
import logging
import os
import struct
from dataclasses import dataclass, field

import cv2
import mxnet as mx
import numpy as np

from console import error_line, progress as progress_bar
from data.geometry import (DETECTION_THRESHOLD, crop_detected_face, crop_to_image,
                           image_to_crop, nearest_to_centre, protocol_crop, refine_mode,
                           refinement_answer, refinement_crop)
from data.landmarks import NUM_LANDMARKS
from data.recordio import read_sidecar, unpack_record
from data.records import RecordFile
from data.shape_prior import decode_landmarks

from . import metrics

FAILURE_THRESHOLDS = (0.08, 0.10)
# The skip reason of a record where the detector found no face.
NO_FACE = 'no face detected'

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Per-image outcome of one evaluation run; points are (x, y) in record-image pixels."""
    dataset: str
    landmark_type: str
    decode: str
    record_ids: list
    predictions: np.ndarray
    ground_truth: np.ndarray
    skipped: list = field(default_factory=list)   # (record id, reason)
    detector: str = ''
    top_shift: int = None   # of the ground-truth crop; None with a detector
    flip_test: bool = False
    floored_ground_truth: bool = True   # the protocol's snapping of §5; False: as labelled
    refine: str = 'none'    # the refinement pass's answer (data.geometry.REFINE_MODES)
    tilt: float = 0.0       # degrees the ground-truth crops were turned after the alignment
    yaw: np.ndarray = None  # (N,) degrees per record id, from the test set's sidecar
    shape_prior: bool = False   # decoded points refined by a shape prior
    rec: str = ''           # the test set's .rec file
    model: str = ''         # what was evaluated, as the caller names it (PREFIX,EPOCH)

    @property
    def normaliser(self):
        return metrics.NORMALISER[self.landmark_type]

    @property
    def point_errors(self):
        """(N, 68) normalised point errors."""
        if not self.record_ids:
            return np.zeros((0, NUM_LANDMARKS))
        return metrics.point_errors(self.predictions, self.ground_truth, self.normaliser)

    @property
    def nme(self):
        """(N,) per-image NME as a fraction."""
        return self.point_errors.mean(axis=1)

    @property
    def mean_nme(self):
        return float(self.nme.mean()) if self.record_ids else float('nan')

    @property
    def per_landmark_error(self):
        """(68,) mean normalised error of each landmark over the images."""
        return self.point_errors.mean(axis=0)

    @property
    def yaw_bins(self):
        """NME per absolute-yaw bin and their mean (metrics.nme_by_yaw), or None when the
        test set has no yaw per record."""
        if self.yaw is None or not self.record_ids:
            return None
        return metrics.nme_by_yaw(self.nme, self.yaw)

    def auc(self, threshold):
        return metrics.auc(self.nme, threshold)

    def failure_rate(self, threshold):
        return metrics.failure_rate(self.nme, threshold)

    @property
    def nme_standard_error(self):
        """Standard error of the mean NME (a fraction), None below two images."""
        return metrics.standard_error(self.nme) if len(self.record_ids) > 1 else None

    @property
    def summary_line(self):
        return 'nme on %s is %.3f%%' % (self.dataset, self.mean_nme * 100)

    def summary(self):
        """The headline numbers as a plain dict (None where there are no images)."""
        has_images = bool(self.record_ids)
        out = {'dataset': self.dataset, 'landmark_type': self.landmark_type,
               'normaliser': self.normaliser, 'decode': self.decode,
               'flip_test': self.flip_test,
               'floored_ground_truth': self.floored_ground_truth,
               'refine': self.refine, 'tilt': self.tilt, 'shape_prior': self.shape_prior,
               'detector': self.detector or None,
               'top_shift': None if self.detector else self.top_shift,
               'rec': self.rec, 'model': self.model or None,
               'images': len(self.record_ids),
               'skipped': len(self.skipped), 'nme': self.mean_nme if has_images else None,
               'nme_standard_error': self.nme_standard_error,
               'yaw_bins': self.yaw_bins}
        for t in FAILURE_THRESHOLDS:
            out['auc@%.2f' % t] = self.auc(t) if has_images else None
            out['failure@%.2f' % t] = self.failure_rate(t) if has_images else None
        return out


def _read_face(reader, offset):
    """(image, (68, 2) points) of the record at `offset`; ValueError with the reason when the
    record is damaged, does not decode, or has a label that is not 68 finite points."""
    try:
        image, gt_points, _ = unpack_record(reader.read(offset))
    except (ValueError, struct.error, cv2.error, mx.base.MXNetError) as exc:
        raise ValueError(error_line(exc)) from None
    if gt_points.shape != (NUM_LANDMARKS, 2):
        raise ValueError('label has %d values, expected %d points' % (gt_points.size,
                                                                      NUM_LANDMARKS))
    if not np.isfinite(gt_points).all():
        raise ValueError('label has NaN or infinite points')
    return image, gt_points


def _first_skips(skipped, count=3):
    """The first `count` (record id, reason) pairs of `skipped` as one short phrase."""
    return '; '.join('record %d: %s' % item for item in skipped[:count]) + (
        ' ...' if len(skipped) > count else '')


def _batches(items, size):
    """Lists of `size` consecutive items (the last may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _crop(image, gt_points, top_shift, detector, input_size, tilt):
    """(crop, M_align, M_crop), or None when the detector finds no face."""
    if detector is None:
        return protocol_crop(image, gt_points, top_shift, output_size=input_size, tilt=tilt)
    face = nearest_to_centre(detector.detect(image, threshold=DETECTION_THRESHOLD), image.shape)
    if face is None:
        return None
    return crop_detected_face(image, face, detector, DETECTION_THRESHOLD, input_size,
                              require_redetection=True)


def evaluate_rec(predictor, rec_path, dataset_name, landmark_type, top_shift, decode='argmax',
                 batch_size=16, progress=True, detector=None, floor_ground_truth=True,
                 refine='none', tilt=0, shape_prior=None):
    """Run the protocol over every record of `rec_path`.

    `predictor.predict(crops_bgr (N, S, S, 3) uint8) -> (N, 68, h, w)` heatmaps and
    `predictor.codec(decode)` its heatmap codec (see inference.model.HeatmapModel).
    `dataset_name` only names the results; `top_shift` is the protocol box's top shift (a
    data-set preset of data.geometry.TOP_SHIFT, or the shift the records were packed with);
    `landmark_type` '2d' or '3d' picks floor/round and the eye/box normaliser. Records that do
    not decode, or where `detector` finds no face, are skipped and listed in the result; when
    none is left to score but for the detector's misses, a ValueError names the file and the
    first reasons.
    `floor_ground_truth` False scores against the labels as they are instead of snapped to the
    crop grid (docs/protocol.md §9), the fair reference for sub-pixel decoders.
    `refine` (with a detector; data.geometry.REFINE_MODES) predicts a second time on the
    protocol crop of the detection pass's landmarks, with `top_shift`, and answers as
    FaceAligner does: 'second' the second pass, 'mean' the mean of both passes after a
    five-point-aligned detection crop (docs/protocol.md §8.1).
    `tilt` (degrees, ground-truth crops only) turns every crop about its centre after the
    alignment: the accuracy on in-plane rotation that no alignment removed.
    When the test set's sidecar (data.recordio.read_sidecar) gives every record a yaw, the
    result carries it for the NME by yaw.
    `shape_prior` (data.shape_prior.ShapePrior) refines every pass's decoded points.
    """
    if landmark_type not in metrics.SNAP:
        raise ValueError('unknown landmark type %r; valid: 2d, 3d' % (landmark_type,))
    refine = refine_mode(refine)
    if refine != 'none' and detector is None:
        raise ValueError('refinement is a pass after a detector crop; give a detector')
    if tilt and detector is not None:
        raise ValueError('a tilt turns the ground-truth crop; it cannot be combined with a '
                         'detector')
    codec = predictor.codec(decode)
    # The RecordFile training reads with too: plain file I/O, so a damaged record (truncated
    # file, an .idx of another file) fails alone; a missing .idx is rebuilt from the .rec as
    # training and show_rec.py rebuild it, and a path that is not a .rec is named as given.
    reader = RecordFile(rec_path)
    result = EvaluationResult(dataset_name, landmark_type, decode, [], None, None,
                              detector=getattr(detector, 'name', ''), top_shift=top_shift,
                              flip_test=getattr(predictor, 'flip_test', False),
                              floored_ground_truth=floor_ground_truth, refine=refine,
                              tilt=tilt, shape_prior=shape_prior is not None,
                              rec=reader.rec_path)
    predictions, ground_truth = [], []

    def predicted(items):
        maps = predictor.predict(np.stack([item[1] for item in items]))
        crop_points = decode_landmarks(codec, maps, shape_prior)
        return [crop_to_image(points, item[2], item[3])
                for item, points in zip(items, crop_points)]

    def refined(items, first_pass):
        """Items re-cropped around their first-pass landmarks (kept where those are
        degenerate), and the landmarks predicted there."""
        again = []
        for item, points in zip(items, first_pass):
            crop = refinement_crop(item[5], points, top_shift, codec.input_size)
            again.append(item if crop is None else (item[0],) + tuple(crop) + item[4:])
        return again, predicted(again)

    def flush(items):
        """Predict a batch of (record id, crop, M_align, M_crop, gt points, image)."""
        record_points = predicted(items)
        if refine != 'none':
            first_items, first_points = items, record_points
            items, second_points = refined(items, record_points)
            record_points = [refinement_answer(refine, first, second, item[2]) for
                             first, second, item in zip(first_points, second_points, first_items)]
        for (record_id, _, m_align, m_crop, gt, _), image_points in zip(items, record_points):
            result.record_ids.append(record_id)
            reference = gt
            if floor_ground_truth:
                snapped = metrics.SNAP[landmark_type](image_to_crop(gt, m_align, m_crop))
                reference = crop_to_image(snapped, m_align, m_crop)
            # The original stored both point sets in float32 arrays before measuring.
            predictions.append(image_points.astype(np.float32))
            ground_truth.append(np.asarray(reference).astype(np.float32))

    def faces():
        for key, offset in progress_bar(list(zip(reader.keys, reader.offsets)),
                                        desc=dataset_name, enabled=progress):
            try:
                image, gt_points = _read_face(reader, offset)
            except ValueError as exc:
                result.skipped.append((int(key), 'unreadable record: %s' % exc))
                continue
            try:
                cropped = _crop(image, gt_points, top_shift, detector, codec.input_size, tilt)
            except ValueError as exc:   # e.g. a label whose five points coincide
                result.skipped.append((int(key), 'unusable label: %s' % exc))
                continue
            if cropped is None:
                result.skipped.append((int(key), NO_FACE))
                continue
            yield (int(key),) + tuple(cropped) + (gt_points, image)

    try:
        for batch in _batches(faces(), batch_size):
            flush(batch)
    finally:
        reader.close()
    if not result.record_ids and not result.skipped:
        raise ValueError('%s: test set has no records' % reader.rec_path)
    unreadable = [item for item in result.skipped if item[1].startswith('unreadable')]
    if unreadable:
        logger.warning('%s: skipped %d unreadable record(s) of %d: %s', reader.rec_path,
                       len(unreadable), len(reader), _first_skips(unreadable, 10))
    if not result.record_ids and len(unreadable) == len(reader):
        raise ValueError('%s: no record could be read (%d skipped; first: %s); is %s the index '
                         'of this file?' % (reader.rec_path, len(unreadable),
                                            _first_skips(unreadable), reader.idx_path))
    # Records a detector found no face in are the detector's misses, a result; records that
    # are all unreadable or unusably labelled leave nothing to measure.
    if not result.record_ids and not any(why == NO_FACE for _, why in result.skipped):
        raise ValueError('%s: no record could be scored (%d skipped; first: %s)'
                         % (reader.rec_path, len(result.skipped), _first_skips(result.skipped)))
    result.predictions = np.array(predictions, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
    result.ground_truth = np.array(ground_truth, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
    facts = read_sidecar(rec_path)
    if all('yaw' in facts.get(key, {}) for key in result.record_ids):
        result.yaw = np.array([facts[key]['yaw'] for key in result.record_ids])
    return result


def protocol_predictions(predictor, rec_path, top_shift, decode='subpixel', batch_size=16,
                         progress=True):
    """Every record's ground-truth protocol crop through `predictor`: (record ids, ground
    truth (N, 68, 2) as labelled, decoded points (N, 68, 2), their heatmap variances
    (N, 68)), all in crop pixels. Records that do not decode or have an unusable label
    are skipped and logged. What a shape prior is fitted and tuned on
    (data.shape_prior); the crop is a similarity of the record image, so an NME computed
    here equals the record-pixel one."""
    codec = predictor.codec(decode)
    reader = RecordFile(rec_path)
    ids, truth, points, variances, skipped = [], [], [], [], []

    def faces():
        for key, offset in progress_bar(list(zip(reader.keys, reader.offsets)),
                                        desc=os.path.basename(rec_path), enabled=progress):
            try:
                image, gt_points = _read_face(reader, offset)
                crop, m_align, m_crop = protocol_crop(image, gt_points, top_shift,
                                                      output_size=codec.input_size)
            except ValueError as exc:
                skipped.append('record %d: %s' % (key, exc))
                continue
            ids.append(int(key))
            yield crop, image_to_crop(gt_points, m_align, m_crop)

    try:
        for batch in _batches(faces(), batch_size):
            maps = predictor.predict(np.stack([crop for crop, _ in batch]))
            points.extend(codec.decode(maps))
            variances.extend(codec.variances(maps))
            truth.extend(gt for _, gt in batch)
    finally:
        reader.close()
    if skipped:
        logger.warning('%s: skipped %d record(s): %s', rec_path, len(skipped),
                       '; '.join(skipped[:10]) + (' ...' if len(skipped) > 10 else ''))
    if not ids:
        raise ValueError('%s: no usable record' % rec_path)
    return ids, np.array(truth), np.array(points), np.array(variances)
