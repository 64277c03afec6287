"""Running a FaceAligner over image files and videos and saving what it found."""
import contextlib
import itertools
import json
import os
import signal
import threading

import cv2

from console import progress
from data.images import read_image, to_bgr8
from fileio import atomic_write, write_json_atomic

from .draw import draw_faces


def _stem(path, output_dir):
    return os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])


def output_names(paths):
    """One output name per input path, unique within the run: the file stem, and for a stem
    met again (a.jpg and a.png, or x/a.jpg and y/a.jpg) the stem with -2, -3, ..."""
    names, seen = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, count = stem, 1
        while name in seen:
            count += 1
            name = '%s-%d' % (stem, count)
        seen.add(name)
        names.append(name)
    return names


def _write_bytes(path, payload):
    def write(tmp_path):
        with open(tmp_path, 'wb') as f:
            f.write(payload)
    atomic_write(path, write)
    return path


def annotate_image(aligner, path, output_dir, name=None, png_suffix='_landmarks'):
    """Write `<name><png_suffix>.png` (boxes + contours) and `<name>.json`, where `name`
    defaults to the image's file name; return (png path, json path, faces)."""
    image = read_image(path)
    faces = aligner.get_landmarks(image)
    stem = os.path.join(output_dir, name) if name else _stem(path, output_dir)
    png = cv2.imencode('.png', draw_faces(image, faces))[1].tobytes()
    png_path = _write_bytes(stem + png_suffix + '.png', png)
    json_path = write_json_atomic(stem + '.json', {
        'image': path, 'width': image.shape[1], 'height': image.shape[0],
        'faces': [face.to_dict() for face in faces]})
    return png_path, json_path, faces


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during a video, after the frames done so far were saved (`jsonl_path`,
    `video_path`, `frames`)."""

    def __init__(self, jsonl_path, video_path, frames):
        super().__init__(jsonl_path, video_path, frames)
        self.jsonl_path, self.video_path, self.frames = jsonl_path, video_path, frames


class VideoDamaged(ValueError):
    """A video whose frames stopped decoding before the count in its header, after the frames
    done so far were saved (`jsonl_path`, `video_path`, `frames`); the message says so."""

    def __init__(self, path, jsonl_path, video_path, frames, expected):
        super().__init__('%s: the video stopped decoding after %d of its %d frames (damaged '
                         'or truncated?); kept the %d frames done -> %s, %s'
                         % (path, frames, expected, frames, video_path, jsonl_path))
        self.jsonl_path, self.video_path, self.frames = jsonl_path, video_path, frames


def _read_frames(capture):
    ok, frame = capture.read()
    while ok:
        yield to_bgr8(frame)
        ok, frame = capture.read()


@contextlib.contextmanager
def _ctrl_c_between_frames():
    """Within the block Ctrl-C only sets a flag (the yielded callable reads it), so a video
    stops between frames: a KeyboardInterrupt raised between writing a frame and its JSON
    line would leave the two files a frame apart. Only the main thread can take the signal,
    and a SIGINT that is ignored (a shell's background job) stays ignored."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def annotate_video(aligner, path, output_dir, on_frame=None, name=None, tracking=None):
    """Write `<name>.jsonl` (one line per frame: index and faces) and `<name>_landmarks.mp4`,
    where `name` defaults to the video's file name; `on_frame(annotated)` sees each drawn
    frame. The face is followed with `aligner.track` at the video's frame rate; `tracking`
    holds its other keyword arguments (redetect_every, min_confidence, smoother). Return
    (jsonl path, video path, frames).

    On Ctrl-C the frames done so far are written the same way and VideoInterrupted is raised;
    when the video stops decoding more than one frame short of the count in its header, they
    are written and VideoDamaged (a ValueError) is raised."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError('%s: not a readable video' % path)
    stem = os.path.join(output_dir, name) if name else _stem(path, output_dir)
    # OpenCV picks the container from the file extension, so the temporary name keeps it.
    video_path, tmp_video = stem + '_landmarks.mp4', stem + '_landmarks.tmp.mp4'
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, lines, interrupted = None, [], False
    # The tracker and this loop walk the same frames in step (one frame buffered).
    frames, drawn_frames = itertools.tee(_read_frames(capture))
    try:
        with progress(total=total, desc=os.path.basename(path), unit='frame') as bar, \
                _ctrl_c_between_frames() as ctrl_c_pressed:
            for frame, faces in zip(drawn_frames,
                                    aligner.track(frames, fps=fps, **(tracking or {}))):
                annotated = draw_faces(frame, faces)
                if writer is None:
                    writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(annotated)
                lines.append(json.dumps({'frame': len(lines),
                                         'faces': [f.to_dict() for f in faces]}))
                if on_frame is not None:
                    on_frame(annotated)
                bar.update(1)
                if ctrl_c_pressed():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not lines:
        if writer is not None and os.path.exists(tmp_video):
            os.remove(tmp_video)
        if interrupted:
            raise KeyboardInterrupt
        raise ValueError('%s: video has no readable frames' % path)
    os.replace(tmp_video, video_path)
    jsonl_path = _write_bytes(stem + '.jsonl', ('\n'.join(lines) + '\n').encode())
    if interrupted:
        raise VideoInterrupted(jsonl_path, video_path, len(lines))
    if total is not None and len(lines) < total - 1:
        raise VideoDamaged(path, jsonl_path, video_path, len(lines), total)
    return jsonl_path, video_path, len(lines)
