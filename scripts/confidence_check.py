"""The heatmaps' peak confidence on faces and next to them, for choosing the tracking
threshold (`test.py --min-confidence`, FaceAligner.track's `min_confidence`) on your own photos
and model: per photo, the largest detected face's confidence, and that of its crop moved one
face width left and right (evaluation.confidence). Prints, for each threshold, how many
off-face crops would pass for a face and how many faces would be dropped; writes a histogram
(PNG) and the values (JSON) to --output.

    python scripts/confidence_check.py --images ../shared/data/300w-test-helen --limit 120
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from console import check_range, configure_logging, run_cli  # noqa: E402
from evaluation.confidence import sample_confidence  # noqa: E402
from evaluation.plots import save_confidence_histogram  # noqa: E402
from fileio import check_writable_dir, write_json_atomic  # noqa: E402
from inference import BACKENDS, FaceAligner  # noqa: E402
from inference.aligner import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from inference.images import IMAGE_EXTENSIONS, list_inputs  # noqa: E402
from inference.model import check_onnx_request  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', action='append', required=True,
                        help='image or folder of images (repeatable)')
    parser.add_argument('--limit', type=int, default=None,
                        help='use the first N images (sorted by name within each folder)')
    parser.add_argument('--prefix', default=None,
                        help='checkpoint prefix or model directory (default: the shipped '
                             '2D model)')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--backend', choices=BACKENDS, default='auto')
    parser.add_argument('--flip-test', action='store_true',
                        help='average each crop\'s maps with its mirror image\'s, as '
                             '`test.py --flip-test` does (its confidences are those it tracks '
                             'with)')
    parser.add_argument('--thresholds', default='0.35,%.2f' % DEFAULT_MIN_CONFIDENCE,
                        help='comma-separated thresholds to report (default: 0.35 and the '
                             'tracking default %.2f)' % DEFAULT_MIN_CONFIDENCE)
    parser.add_argument('--output', default=os.path.join('outputs', 'confidence'),
                        help='folder for confidence.png and confidence.json')
    return parser.parse_args(argv)


def thresholds_of(text):
    try:
        values = [float(value) for value in text.split(',')]
    except ValueError:
        raise ValueError('--thresholds must be comma-separated numbers, got %r' % text) from None
    for value in values:
        check_range('--thresholds', value, minimum=0, maximum=1)
    return values


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    check_range('--limit', args.limit, minimum=1)
    check_onnx_request(args.prefix, args.epoch, args.backend)
    thresholds = thresholds_of(args.thresholds)
    paths = [path for path in list_inputs(args.images)
             if path.lower().endswith(IMAGE_EXTENSIONS)][:args.limit]
    if not paths:
        raise ValueError('%s: no images' % ', '.join(args.images))
    check_writable_dir(args.output, '--output folder')
    aligner = FaceAligner(args.prefix, args.epoch, backend=args.backend,
                          flip_test=args.flip_test)
    sample = sample_confidence(aligner, paths)
    if not len(sample.on_face):
        # No confidence to compare: an earlier measurement in --output stays as it was.
        raise ValueError('%s: no face found to measure (%d image(s): %d without a face, %d '
                         'unreadable); nothing written to %s'
                         % (', '.join(args.images), len(paths), len(sample.no_face),
                            len(sample.skipped), args.output))
    for line in sample.summary_lines(thresholds):
        print(line)
    print('wrote %s' % save_confidence_histogram(
        sample, os.path.join(args.output, 'confidence.png'), thresholds))
    json_path = os.path.join(args.output, 'confidence.json')
    write_json_atomic(json_path, {
        'on_face': [round(float(v), 4) for v in sample.on_face],
        'off_face': [round(float(v), 4) for v in sample.off_face],
        'no_face': sample.no_face, 'skipped': [list(item) for item in sample.skipped]})
    print('wrote %s' % json_path)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
