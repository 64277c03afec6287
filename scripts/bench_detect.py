"""Face detector speed, ms per image, for the bundled MTCNN and (when `import dlib` works) dlib's
HOG frontal-face detector, on (a) the first --count 450 x 450 crops of
../shared/data/300w-test-helen, (b) the same crops padded to 640 x 480 and (c) one 8000 x 6000
image (the first crop padded to 4:3 and upscaled), timed separately (dlib with upsampling
only with --huge-dlib: it takes about a minute there), and (d) the crops with their annotated
face painted grey (as scripts/mtcnn_second_chance.py blanks them), where MTCNN's second chance
runs whenever the first search finds nothing; MTCNN is also timed without it. MTCNN first sees
every image size once (it binds its executors then), so the table shows warm timings, as wall
and process CPU time.
MTCNN searches faces down to 20 px by default; it is also timed with larger smallest faces
(--min-sizes), to compare with dlib's HOG, whose window is 80 px (40 px with one upsampling).
`--quality` also measures MTCNN on every face of the folder: how many are found, and the median
error of its eye points against the eye centres of the annotation (mean of each eye's six
landmarks), in % of the distance between those centres; and dlib's found count.

    python scripts/bench_detect.py                     # speed, 50 crops
    python scripts/bench_detect.py --quality           # speed and quality (330 faces)
"""
import argparse
import glob
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from console import check_range, machine_load, run_cli  # noqa: E402
from data.images import read_image  # noqa: E402
from data.readers import read_pts  # noqa: E402
from essh.mtcnn import MTCNNDetector  # noqa: E402
from scripts.mtcnn_second_chance import blank_face  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), 'shared', 'data', '300w-test-helen')
VGA = (640, 480)
HUGE = (8000, 6000)
HUGE_RUNS = 3


def pad_to(image, width, height):
    """image centred on a black width x height canvas (cropped if larger)."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = image[:h, :w]
    return canvas


class DlibHog:
    """dlib's HOG frontal-face detector on the RGB image, `upsample` pyramid doublings."""

    def __init__(self, upsample):
        import dlib
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.name = 'dlib HOG (upsample %d)' % upsample

    def detect(self, image_bgr):
        return self._detector(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), self.upsample)


class Mtcnn:
    def __init__(self, detector):
        self._detector = detector
        self.name = 'mtcnn (min_size %d, L-Net %s%s)' % (
            detector.min_size, 'on' if detector.refine_points else 'off',
            '' if detector.retry_thresholds is not None else ', no second chance')

    def detect(self, image_bgr):
        return self._detector.detect(image_bgr)


def time_images(detector, images):
    """(mean wall ms, mean process CPU ms per image, faces found) over images, after one
    untimed pass per image size."""
    for shape in sorted({image.shape for image in images}):
        detector.detect(next(image for image in images if image.shape == shape))
    found = 0
    start, cpu = time.perf_counter(), time.process_time()
    for image in images:
        found += len(detector.detect(image))
    return (1000.0 * (time.perf_counter() - start) / len(images),
            1000.0 * (time.process_time() - cpu) / len(images), found)


def time_huge(detector, image, runs, warm_up):
    """(median wall ms, median CPU ms, faces found) of `runs` detections, after an untimed one
    with `warm_up`."""
    if warm_up:
        detector.detect(image)
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        found = len(detector.detect(image))
        walls.append(1000.0 * (time.perf_counter() - start))
        cpus.append(1000.0 * (time.process_time() - cpu))
    return statistics.median(walls), statistics.median(cpus), found


def speed(detectors, crops, blanked, huge_dlib):
    vga = [pad_to(crop, *VGA) for crop in crops]
    base = crops[0]
    side = max(base.shape[:2])
    huge = cv2.resize(pad_to(base, side * 4 // 3, side), HUGE, interpolation=cv2.INTER_LINEAR)
    rows = []
    for detector in detectors:
        row = [detector.name]
        for images in (crops, vga, blanked):
            row.append('%.1f / %.1f (%d faces)' % time_images(detector, images))
        if isinstance(detector, DlibHog) and detector.upsample > 0 and not huge_dlib:
            row.append('not timed (--huge-dlib)')
        elif isinstance(detector, DlibHog):     # nothing to warm up; one run is long enough
            row.append('%.0f / %.0f (%d faces)' % time_huge(detector, huge, 1, False))
        else:
            row.append('%.0f / %.0f (%d faces)' % time_huge(detector, huge, HUGE_RUNS, True))
        rows.append(row)
        print('  done: %s; %s' % (detector.name, machine_load()), flush=True)
    header = ['detector', 'ms/img %d x %d crops (n=%d)' % (base.shape[1], base.shape[0],
                                                           len(crops)),
              'ms/img 640 x 480 (n=%d)' % len(crops),
              'ms/img the crops, face blanked (n=%d)' % len(blanked),
              'ms 8000 x 6000 (MTCNN: median of %d)' % HUGE_RUNS]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ['| ' + ' | '.join(c.ljust(w) for c, w in zip(header, widths)) + ' |',
             '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    lines += ['| ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)) + ' |' for r in rows]
    return '\n'.join(lines + ['(wall / process CPU time; on a busy machine the wall time grows '
                              'with the load, the CPU time much less)'])


def quality(detector, stems):
    """(found, total, images with more than one face, median eye error %, 90th percentile %)."""
    errors, extra = [], 0
    for stem in stems:
        image = read_image(stem + '.jpg')
        points = read_pts(stem + '.pts')
        left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
        eye_distance = np.linalg.norm(left - right)
        centre = (points.min(axis=0) + points.max(axis=0)) / 2
        faces = detector.detect(image)
        extra += len(faces) > 1
        hits = [f for f in faces if f.box[0] <= centre[0] <= f.box[2]
                and f.box[1] <= centre[1] <= f.box[3]]
        if hits:
            face = min(hits, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))
            errors.append((np.linalg.norm(face.points[0] - left)
                           + np.linalg.norm(face.points[1] - right)) / 2 / eye_distance)
    errors = np.asarray(errors) * 100
    return (len(errors), len(stems), extra, float(np.median(errors)),
            float(np.percentile(errors, 90)))


def dlib_found(detector, stems):
    """(found, images with more than one face) of a dlib detector (boxes only)."""
    found = extra = 0
    for stem in stems:
        points = read_pts(stem + '.pts')
        cx, cy = (points.min(axis=0) + points.max(axis=0)) / 2
        boxes = detector.detect(read_image(stem + '.jpg'))
        extra += len(boxes) > 1
        found += any(b.left() <= cx <= b.right() and b.top() <= cy <= b.bottom() for b in boxes)
    return found, extra


def readable_faces(stems):
    """The stems whose image and landmarks both read; each other one is printed with its
    reason, so a damaged file costs one face, not the run."""
    kept = []
    for stem in stems:
        try:
            read_image(stem + '.jpg')
            read_pts(stem + '.pts')
        except ValueError as err:
            print('skipped: %s' % err)
            continue
        kept.append(stem)
    if len(kept) < len(stems):
        print('skipped %d of %d faces' % (len(stems) - len(kept), len(stems)))
    return kept


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=DEFAULT_DATA,
                        help='folder of <stem>.jpg + <stem>.pts faces (default %(default)s)')
    parser.add_argument('--count', type=int, default=50, help='images timed (first N)')
    parser.add_argument('--quality', action='store_true',
                        help='also measure found faces and eye-point error on every face')
    parser.add_argument('--min-sizes', type=int, nargs='*', default=[40, 80],
                        help='also time MTCNN with these smallest face sizes (px)')
    parser.add_argument('--huge-dlib', action='store_true',
                        help='also time dlib with upsampling on the 8000 x 6000 image (about '
                             'a minute)')
    args = parser.parse_args(argv)
    check_range('--count', args.count, minimum=1)
    for size in args.min_sizes:
        check_range('--min-sizes', size, minimum=1)
    stems = readable_faces(sorted(
        path[:-4] for path in glob.glob(os.path.join(args.data, '*.jpg'))
        if os.path.isfile(path[:-4] + '.pts')))
    if not stems:
        raise ValueError('no readable <stem>.jpg + <stem>.pts faces in %s' % args.data)
    crops = [read_image(stem + '.jpg') for stem in stems[:args.count]]
    blanked = [blank_face(crop, read_pts(stem + '.pts'))
               for crop, stem in zip(crops, stems)]
    mtcnn = MTCNNDetector(ctx=mx.cpu())
    # Larger smallest faces for comparison with dlib, whose HOG window is 80 px (40 px with
    # one upsampling).
    detectors = [Mtcnn(mtcnn), Mtcnn(MTCNNDetector(ctx=mx.cpu(), retry_thresholds=None))]
    detectors += [Mtcnn(MTCNNDetector(ctx=mx.cpu(), min_size=size))
                  for size in args.min_sizes if size != mtcnn.min_size]
    try:
        detectors += [DlibHog(0), DlibHog(1)]
    except ImportError:
        print('note: dlib is not installed (import dlib failed): its HOG detector is not timed')
    print(machine_load())
    print(speed(detectors, crops, blanked, args.huge_dlib))
    if args.quality:
        print('\nquality on %s (%d faces): a face is found when a box contains the centre of '
              'its landmark box; eye error = mean of both eye points\' distances to the '
              'annotated eye centres (mean of each eye\'s 6 landmarks), %% of their distance'
              % (args.data, len(stems)))
        for detector in (mtcnn, MTCNNDetector(ctx=mx.cpu(), refine_points=False)):
            found, total, extra, median, p90 = quality(detector, stems)
            print('  mtcnn L-Net %-3s: found %d/%d, images with more than one face %d, '
                  'median eye error %.2f%%, 90th percentile %.2f%%'
                  % ('on' if detector.refine_points else 'off', found, total, extra, median,
                     p90))
        for detector in detectors:
            if isinstance(detector, DlibHog):
                found, extra = dlib_found(detector, stems)
                print('  %s: found %d/%d, images with more than one face %d (no points)'
                      % (detector.name, found, len(stems), extra))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
