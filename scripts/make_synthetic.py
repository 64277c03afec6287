"""Generate the built-in synthetic face data set (`<output>/{train,val,test}.rec` + `.idx`).

Rendered faces with 68 iBUG landmarks in the released data sets' record format; the same seed
always gives the same data, whatever the number of workers.

Examples:
  make_synthetic.py --output datasets/synth2d
  make_synthetic.py --output datasets/synth3d --landmark-type 3d --num-train 5000
  make_synthetic.py --output /tmp/synth --num-train 16 --num-val 0 --num-test 0 \\
      --preview /tmp/synth/preview.png
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import check_range, configure_logging, run_cli  # noqa: E402
from data import synthetic  # noqa: E402
from fileio import check_writable_dir  # noqa: E402

DEFAULT_PREVIEW_COUNT = 16


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', required=True, help='folder for <split>.rec/.idx')
    parser.add_argument('--landmark-type', choices=sorted(synthetic.LANDMARK_TYPES),
                        default='2d', help='2d: jaw on the visible silhouette (300-W); '
                        '3d: projected 3D points (AFLW2000-3D)')
    for split in synthetic.SPLITS:
        parser.add_argument('--num-%s' % split, type=int,
                            default=synthetic.DEFAULT_COUNTS[split],
                            help='faces in %s.rec (0: do not write it)' % split)
    parser.add_argument('--seed', type=int, default=0, help='data set seed')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='rendering processes')
    parser.add_argument('--preview', metavar='PNG',
                        help='also write a contact sheet of the first train faces with '
                             'their landmarks')
    parser.add_argument('--preview-count', type=int,
                        help='faces on the contact sheet of --preview (default %d)'
                             % DEFAULT_PREVIEW_COUNT)
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    counts = {split: getattr(args, 'num_' + split) for split in synthetic.SPLITS}
    check_range('--workers', args.workers, minimum=1)
    check_range('--preview-count', args.preview_count, minimum=1)
    if args.preview_count is not None and not args.preview:
        raise ValueError('--preview-count given without --preview, the sheet it sizes')
    if args.preview:
        # Before the data set is rendered, not after.
        check_writable_dir(os.path.dirname(args.preview), '--preview folder')
    synthetic.recycle_large_allocations()
    start = time.time()
    summaries = synthetic.generate(args.output, args.landmark_type, args.seed, counts,
                                   args.workers)
    if args.preview:
        synthetic.contact_sheet(args.preview, args.landmark_type, args.seed,
                                count=args.preview_count or DEFAULT_PREVIEW_COUNT)
    written = sum(summary.written for summary in summaries.values())
    print('%d synthetic faces (%s landmarks, seed %d) in %.1f s with %d workers'
          % (written, args.landmark_type, args.seed, time.time() - start, args.workers))
    for summary in summaries.values():
        print('  %s' % summary)
    if args.preview:
        print('  preview %s' % args.preview)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
