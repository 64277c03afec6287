"""Print parameters, float32 size and GFLOPs (2 x multiply-adds of convolutions) per zoo model."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import symbols  # noqa: E402
from console import check_range, run_cli  # noqa: E402
from symbols.summary import model_stats  # noqa: E402


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--models', nargs='*', default=symbols.list_models(),
                        help='zoo names (default: all)')
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--multiplier', type=float, default=None,
                        help='override the width multiplier of every model')
    args = parser.parse_args(argv)
    check_range('--input-size', args.input_size, minimum=1)
    check_range('--multiplier', args.multiplier, above=0)
    overrides = {} if args.multiplier is None else {'multiplier': args.multiplier}
    print('%-18s %12s %10s %9s %8s' % ('model', 'params', 'aux', 'MB', 'GFLOPs'))
    for name in args.models:
        stats = model_stats(name, input_size=args.input_size, **overrides)
        print('%-18s %12d %10d %9.1f %8.2f' % (name, stats['params'], stats['aux'],
                                                stats['mb'], stats['gflops']))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
