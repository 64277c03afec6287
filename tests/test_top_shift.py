"""The protocol box's top shift follows the records: pack_rec.py notes the shift it laid the
faces out with in the split's sidecar, and every reader that crops the records uses it unless
told otherwise; records without the note get the preset of their name (docs/data-format.md §3)."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT
from helpers import save_tiny_model, synthetic_face, write_synthetic_rec

from config import generate_config
from data import converters
from data.geometry import DEFAULT_TOP_SHIFT, protocol_crop
from data.iterator import FaceSegIter
from data.recordio import packed_top_shift, sidecar_path, top_shift_for, unpack_record
from data.records import RecordFile

PACKED_SHIFT = 60


def note_shift(rec_path, shift):
    with open(sidecar_path(rec_path), 'w') as handle:
        json.dump({'records': {}, 'top_shift': shift}, handle)


@pytest.fixture
def shifted_rec(tmp_path):
    """Synthetic records in a split named like a test set (ibug: 36) noted as packed with 60."""
    rec = write_synthetic_rec(str(tmp_path / 'ibug'), count=4)
    note_shift(rec, PACKED_SHIFT)
    return rec


def first_record(rec_path):
    records = RecordFile(rec_path)
    try:
        image, points, _ = unpack_record(records.read(records.offsets[0]))
    finally:
        records.close()
    return image, points


def test_presets_by_name_without_a_note():
    assert top_shift_for('/data/ibug.rec') == 36
    assert top_shift_for('cofw_testset.rec') == 45
    assert top_shift_for('x/300W.rec') == 40
    assert top_shift_for('AFLW2000-3D.rec') == 30
    assert top_shift_for('val.rec') == DEFAULT_TOP_SHIFT
    assert top_shift_for('val.rec', preset=40) == 40


def test_the_packed_shift_wins_over_name_and_preset(shifted_rec):
    assert packed_top_shift(shifted_rec) == PACKED_SHIFT
    assert top_shift_for(shifted_rec) == PACKED_SHIFT
    assert top_shift_for(shifted_rec, preset=40) == PACKED_SHIFT


def test_pack_rec_notes_its_shift(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    rng = np.random.RandomState(0)
    for i in range(2):
        image, points = synthetic_face(rng)
        cv2.imwrite(str(folder / ('f%d.png' % i)), image)
        np.savetxt(str(folder / ('f%d.pts' % i)), points + 1, fmt='%.3f')
    summary = converters.pack_pts_folder(str(folder), str(tmp_path / 'out'), top_shift=44)
    assert packed_top_shift(summary.paths['train']) == 44


@pytest.mark.parametrize('content, problem', [
    ('{"records": {}, "top_shift": -3}', 'not a pixel count'),
    ('{"records": {}, "top_shift": "40"}', 'not a pixel count'),
    ('{"records": {}, "top_shift": true}', 'not a pixel count'),
    ('[1, 2]', 'not a record sidecar'),
    ('{not json', 'not a record sidecar'),
])
def test_a_damaged_note_is_an_error_naming_the_sidecar(tmp_path, content, problem):
    rec = write_synthetic_rec(str(tmp_path / 'val'), count=1)
    with open(sidecar_path(rec), 'w') as handle:
        handle.write(content)
    with pytest.raises(ValueError, match=problem) as raised:
        top_shift_for(rec)
    assert str(raised.value).startswith(sidecar_path(rec))


def test_a_sidecar_without_the_note_keeps_the_name_preset(tmp_path):
    rec = write_synthetic_rec(str(tmp_path / '300W'), count=1)
    with open(sidecar_path(rec), 'w') as handle:
        json.dump({'records': {'0': {'name': 'a'}}}, handle)
    assert packed_top_shift(rec) is None and top_shift_for(rec) == 40


def test_training_validation_crops_with_the_packed_shift(shifted_rec):
    cfg = generate_config('hourglass', 'i2d')
    batch = FaceSegIter(shifted_rec, 1, cfg, aug_level=0, shuffle=False, num_workers=0).next()
    image, points = first_record(shifted_rec)
    crops = {shift: protocol_crop(image, points, shift)[0] for shift in (PACKED_SHIFT, 36)}
    data = batch.data[0].asnumpy()[0].transpose(1, 2, 0)[:, :, ::-1]   # RGB planes -> BGR
    error = {shift: np.abs(data - crop).mean() for shift, crop in crops.items()}
    assert error[PACKED_SHIFT] < 1.0 < error[36]


def test_int8_calibration_crops_with_the_packed_shift(shifted_rec):
    from inference.onnx_quantize import calibration_crops
    image, points = first_record(shifted_rec)
    crop = calibration_crops(shifted_rec, count=1)[0]
    np.testing.assert_array_equal(crop, protocol_crop(image, points, PACKED_SHIFT)[0])
    assert np.abs(crop.astype(float) - protocol_crop(image, points, 36)[0]).mean() > 1.0


def run_evaluate(rec, prefix, output, *extra):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'evaluate.py'), '--dataset', 'ibug', '--rec', rec,
         '--prefix', prefix, '--gpu', '-1', '--landmark-type', '2d', '--batch-size', '4',
         '--output', output] + list(extra), cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_evaluate_uses_the_packed_shift_unless_told(shifted_rec, tmp_path):
    (tmp_path / 'model').mkdir()
    prefix = save_tiny_model(str(tmp_path / 'model' / 'model'))
    for extra, expected in (((), PACKED_SHIFT), (('--top-shift', '36'), 36)):
        output = str(tmp_path / ('out%d' % expected))
        proc = run_evaluate(shifted_rec, prefix, output, *extra)
        assert proc.returncode == 0, proc.stderr
        assert ', top shift %d' % expected in proc.stdout
        with open(os.path.join(output, 'ibug_results.json')) as handle:
            results = json.load(handle)
        assert results['top_shift'] == expected
        # The results say what was measured: runs with other flags write the same file name.
        assert (results['rec'], results['model']) == (shifted_rec, prefix + ',0')
    note_shift(shifted_rec, -1)
    proc = run_evaluate(shifted_rec, prefix, str(tmp_path / 'bad'))
    assert proc.returncode == 2
    assert proc.stderr.strip() == 'error: %s: not a record sidecar (top_shift is -1, not a ' \
        'pixel count)' % sidecar_path(shifted_rec)
