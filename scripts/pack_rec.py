"""Pack annotated face images into RecordIO data sets (`<output>/<split>.rec` + `.idx`).

Examples:
  pack_rec.py --format pts --input 300w-train --output datasets/my2d --val-fraction 0.1
  pack_rec.py --format pts --input 300w-train --output datasets/my2d --list afw_stems.txt
  pack_rec.py --format aflw2000 --input AFLW2000 --output datasets/my3d
  pack_rec.py --format cofw --input COFW68_Data/test_annotations \\
      --images COFW_test_color.mat --output datasets/my2d
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import check_range, configure_logging, run_cli  # noqa: E402
from data import converters  # noqa: E402
from data.geometry import ALIGN_SIZE, DEFAULT_TOP_SHIFT  # noqa: E402
from fileio import check_writable_dir, removed_if_left_empty  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--format', required=True, choices=['pts', 'aflw2000', 'cofw'],
                        help='pts: <stem>.pts + image folder (300-W, HELEN, LFPW, AFW, iBUG, '
                             'menpo); aflw2000: <stem>.jpg + <stem>.mat (pt3d_68); cofw: '
                             'COFW-68 annotations (.pts or <n>_points.mat) + --images')
    parser.add_argument('--input', required=True, help='folder of images and annotations '
                        '(for cofw: the annotation folder)')
    parser.add_argument('--images', help='cofw only: image folder or COFW_test_color.mat '
                        '(default: the --input folder)')
    parser.add_argument('--output', required=True, help='output folder for <split>.rec/.idx')
    parser.add_argument('--list', help='file of sample names, one per line: they form '
                        'val.rec (the rest train.rec), or with --split the only ones packed')
    parser.add_argument('--val-fraction', type=float, default=0.0,
                        help='hold out this random fraction as val.rec (rest train.rec)')
    parser.add_argument('--seed', type=int, help='seed of the --val-fraction draw (default 0)')
    parser.add_argument('--split', help='write one split of this name (e.g. ibug, 300W); '
                        'default: train (pts), AFLW2000-3D, cofw_testset')
    parser.add_argument('--top-shift', type=int, default=DEFAULT_TOP_SHIFT,
                        help='box top shift of the evaluation crop the records are laid out '
                        'for (default %(default)s, the shift of this toolkit\'s own validation '
                        'splits; 40 trains for the 300W protocol)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality of the records')
    parser.add_argument('--keep-outside-image', action='store_true',
                        help='keep faces with points outside the source image (as long as '
                             'they fit the record); default: skip them')
    return parser.parse_args(argv)


def _stop_on_sigterm(signum, frame):
    # As Ctrl-C does: unwinding lets the record writers remove their half-written *.tmp files.
    raise SystemExit(128 + signum)


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.images and args.format != 'cofw':
        raise ValueError('--images is only for --format cofw')
    check_range('--top-shift', args.top_shift, minimum=0, maximum=ALIGN_SIZE)
    check_range('--quality', args.quality, minimum=1, maximum=100)
    if not 0.0 <= args.val_fraction < 1.0:
        raise ValueError('--val-fraction must be in 0..1 (1 excluded), got %s' % args.val_fraction)
    if args.seed is not None and not args.val_fraction:
        raise ValueError('--seed given without --val-fraction, the draw it seeds')
    if args.val_fraction and args.split:
        raise ValueError('--val-fraction cannot be combined with --split: one named split has '
                         'no held-out part')
    if args.val_fraction and args.list:
        raise ValueError('--val-fraction cannot be combined with --list: the list already '
                         'chooses the faces of val.rec')
    converters.check_split_name(args.split, '--split')
    if not os.path.isdir(args.input):
        raise ValueError('%s: not a folder' % args.input)
    options = dict(list_file=args.list, val_fraction=args.val_fraction, seed=args.seed or 0,
                   split=args.split, quality=args.quality,
                   keep_outside_image=args.keep_outside_image, top_shift=args.top_shift)
    with removed_if_left_empty(args.output):
        check_writable_dir(args.output, '--output folder')
        if args.format == 'pts':
            summary = converters.pack_pts_folder(args.input, args.output, **options)
        elif args.format == 'aflw2000':
            summary = converters.pack_aflw2000(args.input, args.output, **options)
        else:
            summary = converters.pack_cofw(args.input, args.images or args.input, args.output,
                                           **options)
    print(summary)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
