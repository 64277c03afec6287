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

from console import configure_logging  # noqa: E402
from data import synthetic  # noqa: E402


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
    parser.add_argument('--preview-count', type=int, default=16,
                        help='faces on the contact sheet')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    configure_logging()
    counts = {split: getattr(args, 'num_' + split) for split in synthetic.SPLITS}
    if args.workers < 1 or args.preview_count < 1:
        print('error: --workers and --preview-count must be at least 1', file=sys.stderr)
        return 2
    synthetic.recycle_large_allocations()
    start = time.time()
    try:
        summaries = synthetic.generate(args.output, args.landmark_type, args.seed, counts,
                                       args.workers)
        if args.preview:
            synthetic.contact_sheet(args.preview, args.landmark_type, args.seed,
                                    count=args.preview_count)
    except (ValueError, OSError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    written = sum(summary.written for summary in summaries.values())
    print('%d synthetic faces (%s landmarks, seed %d) in %.1f s with %d workers'
          % (written, args.landmark_type, args.seed, time.time() - start, args.workers))
    for summary in summaries.values():
        print('  %s' % summary)
    if args.preview:
        print('  preview %s' % args.preview)
    return 0


if __name__ == '__main__':
    sys.exit(main())
