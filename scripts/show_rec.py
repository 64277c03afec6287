"""Save a PNG of the first records of a `.rec` file with their landmarks, above the crops the
training iterator makes of them (rotation, scale and flip written under each crop)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import generate_config  # noqa: E402
from console import check_range, configure_logging, run_cli  # noqa: E402
from data.preview import augmentation_sheet, save_png  # noqa: E402


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('rec', help='.rec file')
    parser.add_argument('--out', default='show_rec.png', help='PNG to write')
    parser.add_argument('--count', type=int, default=8,
                        help='records to show (at most the number in the file)')
    parser.add_argument('--seed', type=int, default=0, help='augmentation seed')
    parser.add_argument('--aug-level', type=int, default=1, choices=(0, 1),
                        help='1: training augmentation, 0: evaluation (docs/protocol.md) crops')
    parser.add_argument('--dataset', default='i2d', help='data-set preset (label layout)')
    args = parser.parse_args(argv)
    check_range('--count', args.count, minimum=1)
    if not args.out.lower().endswith('.png'):
        raise ValueError('%s: --out must end in .png, the sheet is written as PNG' % args.out)
    configure_logging()
    cfg = generate_config('hourglass', args.dataset)
    save_png(args.out, augmentation_sheet(args.rec, cfg, args.count, args.seed, args.aug_level))
    print('wrote %s' % args.out)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
