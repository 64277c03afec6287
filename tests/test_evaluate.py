"""Evaluation protocol (docs/protocol.md) and the evaluate.py CLI, on a tiny random-weight
network."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT, real_face_folders
from helpers import NME_LINE, save_tiny_model, synthetic_face_points, write_synthetic_rec

import essh
from data.codec import HeatmapCodec, encode_heatmaps
from data.geometry import TOP_SHIFT, image_to_crop, protocol_crop
from data.landmarks import five_points
from data.recordio import split_paths, unpack_record
from evaluation import metrics
from evaluation.protocol import evaluate_rec
from evaluation.report import summary_lines


def crop_ground_truth(rec_path, dataset, top_shift=None, tilt=0):
    """Ground truth of every record in its 128 protocol crop (the test's own oracle)."""
    idx_path, rec_path = split_paths(rec_path)
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'r')
    out = []
    for key in reader.keys:
        image, points, _ = unpack_record(reader.read_idx(key))
        points = points.astype(np.float64)
        shift = TOP_SHIFT[dataset] if top_shift is None else top_shift
        _, m_align, m_crop = protocol_crop(image, points, shift, tilt=tilt)
        out.append(image_to_crop(points, m_align, m_crop))
    reader.close()
    return out


class OraclePredictor:
    """Returns, in record order, heatmaps (map_size^2) made from the known crop ground truth."""

    def __init__(self, crop_points, make_heatmaps, map_size=128):
        self._queue = list(crop_points)
        self._make = make_heatmaps
        self.map_size = map_size

    def codec(self, decode):
        return HeatmapCodec(128, self.map_size, decode_method=decode)

    def predict(self, crops):
        assert crops.shape[1:] == (128, 128, 3) and crops.dtype == np.uint8
        batch, self._queue = self._queue[:len(crops)], self._queue[len(crops):]
        return np.stack([self._make(points) for points in batch])


def peaks_at(snap):
    """128 x 128 maps with a single peak at the snapped point: argmax decodes it exactly."""
    def make(points):
        maps = np.zeros((len(points), 128, 128), dtype=np.float32)
        for i, (x, y) in enumerate(snap(points).astype(int)):
            maps[i, y, x] = 1.0
        return maps
    return make


@pytest.fixture(scope='module')
def synthetic_rec(tmp_path_factory):
    return write_synthetic_rec(str(tmp_path_factory.mktemp('recs') / 'ibug'), count=6)


@pytest.fixture(scope='module')
def tiny_prefix(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp('model') / 'model'))


@pytest.mark.parametrize('landmark_type, snap', [('2d', np.floor), ('3d', np.round)])
def test_prediction_at_snapped_ground_truth_scores_zero(synthetic_rec, landmark_type, snap):
    truth = crop_ground_truth(synthetic_rec, 'ibug')
    result = evaluate_rec(OraclePredictor(truth, peaks_at(snap)), synthetic_rec, 'ibug',
                          landmark_type, TOP_SHIFT['ibug'], batch_size=4, progress=False)
    assert len(result.record_ids) == 6 and not result.skipped
    assert result.mean_nme == pytest.approx(0.0, abs=1e-9)
    assert result.summary_line == 'nme on ibug is 0.000%'
    snapped = {'2d': 'floored', '3d': 'rounded'}[landmark_type]
    assert summary_lines(result)[-1].endswith(', %s ground truth, top shift %d'
                                              % (snapped, TOP_SHIFT['ibug']))


def test_top_shift_overrides_the_test_sets_own(synthetic_rec):
    truth = crop_ground_truth(synthetic_rec, 'ibug', top_shift=60)
    shifted = evaluate_rec(OraclePredictor(truth, peaks_at(np.floor)), synthetic_rec, 'ibug',
                           '2d', 60, progress=False)
    assert shifted.mean_nme == pytest.approx(0.0, abs=1e-9)
    own_shift = evaluate_rec(OraclePredictor(truth, peaks_at(np.floor)), synthetic_rec, 'ibug',
                             '2d', TOP_SHIFT['ibug'], progress=False)
    assert own_shift.mean_nme > 0.02


def test_tilted_crops_turn_the_face_and_map_back(synthetic_rec):
    upright = crop_ground_truth(synthetic_rec, 'ibug')
    turned = crop_ground_truth(synthetic_rec, 'ibug', tilt=30)
    # The points turn 30 degrees about the crop centre (clockwise on screen: y grows with x).
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(turned[0], (upright[0] - 64).dot(rotation.T) + 64, atol=1e-6)
    # An oracle of the turned crops scores zero through the turned warps; the upright
    # oracle's points, read in turned crops, are far off.
    exact = evaluate_rec(OraclePredictor(turned, peaks_at(np.floor)), synthetic_rec, 'ibug',
                         '2d', TOP_SHIFT['ibug'], progress=False, tilt=30)
    assert exact.mean_nme == pytest.approx(0.0, abs=1e-9)
    assert exact.summary()['tilt'] == 30
    assert summary_lines(exact)[-1].endswith('floored ground truth, crops tilted 30 degrees, '
                                             'top shift 36')
    wrong = evaluate_rec(OraclePredictor(upright, peaks_at(np.floor)), synthetic_rec, 'ibug',
                         '2d', TOP_SHIFT['ibug'], progress=False, tilt=30)
    assert wrong.mean_nme > 0.1
    with pytest.raises(ValueError, match='cannot be combined with a detector'):
        evaluate_rec(OraclePredictor(upright, peaks_at(np.floor)), synthetic_rec, 'ibug',
                     '2d', TOP_SHIFT['ibug'], progress=False, tilt=30, detector=object())


def test_2d_floors_and_3d_rounds_ground_truth(synthetic_rec):
    truth = crop_ground_truth(synthetic_rec, 'ibug')
    fractions = np.concatenate(truth) % 1.0
    assert (fractions >= 0.5).any()   # some points round up, so floor and round differ
    floored_as_3d = evaluate_rec(OraclePredictor(truth, peaks_at(np.floor)), synthetic_rec,
                                 'ibug', '3d', TOP_SHIFT['ibug'], progress=False)
    assert floored_as_3d.mean_nme > 0.001
    expected = metrics.nme(floored_as_3d.predictions, floored_as_3d.ground_truth, 'box')
    np.testing.assert_allclose(floored_as_3d.nme, expected)


def test_encoded_ground_truth_heatmaps_give_rounding_floor_nme(synthetic_rec):
    truth = crop_ground_truth(synthetic_rec, 'ibug')
    result = evaluate_rec(OraclePredictor(truth, encode_heatmaps, map_size=64), synthetic_rec,
                          'ibug', '2d', TOP_SHIFT['ibug'], progress=False)
    # Only the 64-pixel label grid and the 128 crop's integer pixels separate prediction and
    # truth: at most ~2 crop pixels, a few percent of the eye distance, never zero for all.
    assert 0.0 < result.mean_nme < 0.05
    assert result.failure_rate(0.08) == 0.0 and result.auc(0.10) > 0.5
    assert result.per_landmark_error.shape == (68,)


def test_standard_error_of_the_mean_nme_needs_two_images(tmp_path):
    rec_path = write_synthetic_rec(str(tmp_path / 'one'), count=1)
    truth = crop_ground_truth(rec_path, 'cofw_testset')
    result = evaluate_rec(OraclePredictor(truth, peaks_at(np.floor)), rec_path, 'cofw_testset',
                          '2d', TOP_SHIFT['cofw_testset'], progress=False)
    assert len(result.record_ids) == 1 and result.nme_standard_error is None
    assert result.summary()['nme_standard_error'] is None
    assert summary_lines(result)[1].startswith('  standard error of the mean -  AUC@')


def test_bad_record_is_skipped_and_reported(tmp_path):
    source_path = write_synthetic_rec(str(tmp_path / 'src'), count=3)
    source = mx.recordio.MXIndexedRecordIO(*split_paths(source_path), 'r')
    idx_path, rec_path = split_paths(str(tmp_path / 'cofw_testset'))
    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'w')
    writer.write_idx(0, source.read_idx(0))
    writer.write_idx(1, b'not a record at all')
    writer.write_idx(2, source.read_idx(2))
    writer.close()
    source.close()
    truth = crop_ground_truth(source_path, 'cofw_testset')
    result = evaluate_rec(OraclePredictor([truth[0], truth[2]], peaks_at(np.floor)), rec_path,
                          'cofw_testset', '2d', TOP_SHIFT['cofw_testset'], progress=False)
    assert result.record_ids == [0, 2]
    assert [key for key, _ in result.skipped] == [1]
    assert result.mean_nme == pytest.approx(0.0, abs=1e-9)


def test_detector_crop_counts_misses(synthetic_rec):
    class NoFaces:
        name = 'none'

        def detect(self, image, threshold=0.4):
            return []
    result = evaluate_rec(OraclePredictor([], peaks_at(np.floor)), synthetic_rec, 'ibug', '2d',
                          None, progress=False, detector=NoFaces())
    assert not result.record_ids
    assert [why for _, why in result.skipped] == ['no face detected'] * 6


class DotDetector:
    """Finds the drawn synthetic face: box of its bright landmark dots, and (optionally) the
    five points of the undisplaced synthetic face, in every image it is shown."""
    name = 'dots'

    def __init__(self, with_points):
        self.points = five_points(synthetic_face_points()) if with_points else None

    def detect(self, image, threshold=0.4):
        ys, xs = np.nonzero(image.min(axis=2) > 200)
        if len(xs) == 0:
            return []
        box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)
        return [essh.Face(box, 0.99, self.points)]


class DotCounter:
    """Checks that each crop it is given shows the face's dots, and predicts zeros."""

    def codec(self, decode):
        return HeatmapCodec(decode_method=decode)

    def predict(self, crops):
        assert all((crop.min(axis=2) > 150).sum() > 100 for crop in crops)
        return np.zeros((len(crops), 68, 64, 64), dtype=np.float32)


@pytest.mark.parametrize('with_points', [True, False])
def test_detector_crop_holds_the_face(synthetic_rec, with_points):
    result = evaluate_rec(DotCounter(), synthetic_rec, '300W', '2d', None, progress=False,
                          detector=DotDetector(with_points))
    assert len(result.record_ids) == 6 and not result.skipped and result.detector == 'dots'


class ConstantFace:
    """Predicts the same face in every crop (the synthetic face's protocol-crop layout) and
    keeps the crops it was shown."""

    def __init__(self, crop_points):
        self.maps = encode_heatmaps(crop_points)
        self.seen = []

    def codec(self, decode):
        return HeatmapCodec(decode_method=decode)

    def predict(self, crops):
        self.seen.extend(crops)
        return np.stack([self.maps] * len(crops))


def test_refinement_predicts_again_on_the_protocol_crop_of_the_first_pass(synthetic_rec):
    layout = crop_ground_truth(synthetic_rec, '300W')[0]
    first = ConstantFace(layout)
    plain = evaluate_rec(first, synthetic_rec, '300W', '2d', 40, progress=False,
                         detector=DotDetector(True))
    again = ConstantFace(layout)
    refined = evaluate_rec(again, synthetic_rec, '300W', '2d', 40, progress=False,
                           detector=DotDetector(True), refine='second')
    count = len(plain.record_ids)
    assert count == len(refined.record_ids) == 6 and refined.summary()['refine'] == 'second'
    # The refinement pass saw, for each record, the protocol crop of its first-pass landmarks.
    assert len(again.seen) == 2 * count
    reader = mx.recordio.MXIndexedRecordIO(*split_paths(synthetic_rec), 'r')
    for index, key in enumerate(reader.keys):
        image, _, _ = unpack_record(reader.read_idx(key))
        expected, _, _ = protocol_crop(image, plain.predictions[index].astype(np.float64), 40)
        assert np.abs(again.seen[count + index].astype(int) - expected).max() <= 1
    reader.close()
    assert not np.allclose(plain.predictions, refined.predictions)
    # 'mean' (FaceAligner's answer) averages both passes after the five-point-aligned detection
    # crop, and is the second pass after a bare box crop.
    for with_points in (True, False):
        passes = {mode: evaluate_rec(ConstantFace(layout), synthetic_rec, '300W', '2d', 40,
                                     progress=False, detector=DotDetector(with_points),
                                     refine=mode) for mode in ('none', 'second', 'mean')}
        expected = ((passes['none'].predictions + passes['second'].predictions) / 2
                    if with_points else passes['second'].predictions)
        np.testing.assert_allclose(passes['mean'].predictions, expected, atol=1e-4)
        np.testing.assert_array_equal(passes['mean'].ground_truth, passes['second'].ground_truth)
    with pytest.raises(ValueError, match='detector'):
        evaluate_rec(again, synthetic_rec, '300W', '2d', 40, progress=False, refine='mean')


def test_unknown_dataset_and_missing_rec_are_clear_errors(synthetic_rec, tmp_path):
    # The data-set name picks the top-shift preset in the CLI; the library takes the shift.
    proc = run_cli('evaluate.py', '--dataset', 'helen', '--rec', synthetic_rec)
    assert proc.returncode == 2 and "invalid choice: 'helen'" in proc.stderr
    with pytest.raises(ValueError, match='nowhere.rec'):
        evaluate_rec(OraclePredictor([], peaks_at(np.floor)), str(tmp_path / 'nowhere.rec'),
                     'ibug', '2d', TOP_SHIFT['ibug'])


def run_cli(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('faces', real_face_folders())
def test_evaluate_cli_end_to_end(tmp_path, tiny_prefix, faces):
    from data.converters import pack_pts_folder
    rec_path = pack_pts_folder(faces, str(tmp_path / 'data'), split='ibug').paths['ibug']
    out = tmp_path / 'out'
    proc = run_cli('evaluate.py', '--dataset', 'ibug', '--rec', rec_path, '--prefix',
                   tiny_prefix, '--epoch', '0', '--gpu', '-1', '--landmark-type', '2d',
                   '--batch-size', '4', '--output', str(out), '--top-shift', '50')
    assert proc.returncode == 0, proc.stderr
    match = NME_LINE.search(proc.stdout)
    assert match and match.group(1) == 'ibug'
    results = json.loads((out / 'ibug_results.json').read_text())
    assert results['images'] == len(results['per_image']) > 0 and results['top_shift'] == 50
    pred = np.array([item['prediction'] for item in results['per_image']])
    gt = np.array([item['ground_truth'] for item in results['per_image']])
    assert match.group(2) == '%.3f' % (metrics.nme(pred, gt, 'eye').mean() * 100)
    assert 'AUC@0.08' in proc.stdout and 'failure@0.10' in proc.stdout
    errors = np.array([item['nme'] for item in results['per_image']])
    assert results['nme_standard_error'] == pytest.approx(
        errors.std(ddof=1) / np.sqrt(len(errors)))
    assert 'standard error of the mean %.3f points' % (
        results['nme_standard_error'] * 100) in proc.stdout
    assert (out / 'ibug_ced.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    per_landmark = json.loads((out / 'ibug_per_landmark.json').read_text())
    assert len(per_landmark['mean_error']) == 68
    assert results['floored_ground_truth'] is True and results['decode'] == 'argmax'
    # DARK decoding against the labels as they are (not floored to the crop grid).
    proc = run_cli('evaluate.py', '--dataset', 'ibug', '--rec', rec_path, '--prefix',
                   tiny_prefix, '--epoch', '0', '--gpu', '-1', '--landmark-type', '2d',
                   '--batch-size', '4', '--output', str(tmp_path / 'dark'), '--top-shift', '50',
                   '--decode', 'dark', '--unfloored-gt')
    assert proc.returncode == 0, proc.stderr
    assert 'decode dark, unfloored ground truth' in proc.stdout
    dark = json.loads((tmp_path / 'dark' / 'ibug_results.json').read_text())
    assert dark['floored_ground_truth'] is False and dark['decode'] == 'dark'
    unfloored = np.array([item['ground_truth'] for item in dark['per_image']])
    assert 0 < np.abs(unfloored - gt).max() < 2.5   # the flooring, mapped back to the record


def test_evaluate_cli_missing_model_is_one_line_error(tmp_path, synthetic_rec):
    proc = run_cli('evaluate.py', '--dataset', 'ibug', '--rec', synthetic_rec,
                   '--prefix', str(tmp_path / 'absent' / 'model'), '--gpu', '-1')
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: model file not found')
    assert 'model-0000.params' in lines[0] and 'absent' in lines[0]


def test_default_test_set_paths_are_relative():
    from evaluate import default_rec_path
    assert default_rec_path('ibug') == os.path.join('data_2d', 'ibug.rec')
    assert default_rec_path('AFLW2000-3D') == os.path.join('data_3d', 'AFLW2000-3D.rec')
    assert default_rec_path('300W', 'elsewhere') == os.path.join('elsewhere', '300W.rec')


def test_unfloored_ground_truth_scores_exact_subpixel_predictions_as_zero(synthetic_rec):
    """Maps drawn at the exact crop positions, DARK-decoded, match the labels as they are; the
    original protocol's floored ground truth charges them the flooring."""
    from data.codec import heatmap_centres, render_heatmaps_at

    def exact_maps(points):
        maps = np.zeros((1, len(points), 64, 64), np.float32)
        render_heatmaps_at(maps, heatmap_centres(points)[np.newaxis])
        return maps[0]

    truth = crop_ground_truth(synthetic_rec, 'ibug')
    results = [evaluate_rec(OraclePredictor(truth, exact_maps, map_size=64), synthetic_rec,
                            'ibug', '2d', TOP_SHIFT['ibug'], decode='dark', progress=False,
                            floor_ground_truth=floor) for floor in (False, True)]
    unfloored, floored = results
    assert unfloored.mean_nme < 1e-3 < floored.mean_nme
    assert unfloored.summary()['floored_ground_truth'] is False
    assert floored.summary()['floored_ground_truth'] is True


def test_ablation_row_reports_each_column_as_evaluated(synthetic_rec, tiny_prefix):
    """scripts/ablation_row.py: the validation and test columns are evaluate_rec's numbers for
    the same model, decoding and ground truth; the row has one cell per column."""
    proc = run_cli('scripts/ablation_row.py', '--prefix', tiny_prefix, '--val', synthetic_rec,
                   '--test', synthetic_rec, '--top-shift', str(TOP_SHIFT['ibug']),
                   '--skip-detector', '--backend', 'mxnet')
    assert proc.returncode == 0, proc.stderr
    from inference import load_heatmap_model
    model = load_heatmap_model(tiny_prefix, backend='mxnet')
    argmax = evaluate_rec(model, synthetic_rec, 'val', '2d', TOP_SHIFT['ibug'], progress=False)
    dark = evaluate_rec(model, synthetic_rec, 'test', '2d', TOP_SHIFT['ibug'], decode='dark',
                        progress=False, floor_ground_truth=False)
    row = proc.stdout.strip().splitlines()[-1].split(' | ')
    assert len(row) == 6 and row[0] == '| %s:0' % tiny_prefix
    assert row[1] == row[2] == '%.3f%%' % (100 * argmax.mean_nme)
    assert row[4] == '%.3f%%' % (100 * dark.mean_nme)
    missing = run_cli('scripts/ablation_row.py', '--prefix', tiny_prefix, '--val', 'nowhere.rec',
                      '--test', synthetic_rec)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        'error: nowhere.rec: no such .rec file']
