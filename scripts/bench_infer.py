"""Inference speed, ms per face from a 128 x 128 crop to 68 landmarks, in one run: the
original's per-face path (batch-1 Module, per-landmark resize + argmax) against the library
path (batched executors, subpixel decoding at heatmap resolution) on MXNet at batch 1 and
--batch-size, in float32 and (on a CPU with avx512_bf16/amx_bf16) bf16, and on onnxruntime
(float and int8). Measured for a random-weight `--network` (default hg2d3-cab) and for a real
checkpoint: --prefix, by default the shipped models/hg1d4-resnet-m025-300w/model. The paths
take turns (--rounds passes each) and the load average is printed alongside: on a shared
machine the wall times move with it, the CPU times much less.

    python scripts/bench_infer.py
    python scripts/bench_infer.py --prefix models/model-hg2d3-cab/model --epoch 0
    python scripts/bench_infer.py --network hg2d4-resnet --net-stacks 1 --multiplier 0.3125
        # the shipped model's graph made wider, timed beside the shipped model
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from console import check_range, machine_load, run_cli  # noqa: E402
from inference.model_dir import checkpoint_prefix  # noqa: E402
from scripts.infer_timing import (benchmark_checkpoint, format_timings,  # noqa: E402
                                 save_random_checkpoint)
from symbols.precision import bf16_unsupported_reason, cpu_flags, prepare_bf16  # noqa: E402

SHIPPED_PREFIX = os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w', 'model')


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--network', default='hg2d3-cab',
                        help='zoo network timed with random weights ("" to skip)')
    parser.add_argument('--multiplier', type=float,
                        help='width multiplier of --network (default: its own)')
    parser.add_argument('--net-stacks', type=int,
                        help='stack count of --network (default: its own)')
    parser.add_argument('--prefix', help='checkpoint prefix to time as well (default: the '
                        'shipped model when present; "" to skip)')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--faces', type=int, default=16, help='faces per measurement')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--rounds', type=int, default=2, help='timed passes of each path')
    args = parser.parse_args(argv)
    for flag in ('--faces', '--batch-size', '--rounds', '--net-stacks'):
        check_range(flag, getattr(args, flag[2:].replace('-', '_')), minimum=1)
    check_range('--multiplier', args.multiplier, above=0)
    check_range('--epoch', args.epoch, minimum=0)
    if not args.network:
        given = [flag for flag, value in (('--multiplier', args.multiplier),
                                          ('--net-stacks', args.net_stacks)) if value is not None]
        if given:
            raise ValueError('%s given with an empty --network, the graph it shapes'
                             % ' and '.join(given))
    if args.prefix is None and os.path.isfile(SHIPPED_PREFIX + '-symbol.json'):
        args.prefix = SHIPPED_PREFIX
    if not args.network and not args.prefix:
        raise ValueError('nothing to time: --network is empty and there is no --prefix')
    no_bf16 = bf16_unsupported_reason(cpu_flags())
    if no_bf16:
        print('bf16 not timed: %s' % no_bf16)
    else:
        prepare_bf16()      # before any operator runs, so that AMX is used
    print(machine_load())
    with tempfile.TemporaryDirectory() as scratch:
        runs = []
        if args.network:
            overrides = {key: value for key, value in (('multiplier', args.multiplier),
                                                       ('net_stacks', args.net_stacks))
                         if value is not None}
            prefix = save_random_checkpoint(os.path.join(scratch, 'model'), args.network,
                                            **overrides)
            shown = ''.join(', %s %s' % item for item in sorted(overrides.items()))
            runs.append(('%s%s (random weights)' % (args.network, shown), prefix, 0))
        if args.prefix:
            # A model directory (as every command takes) names its checkpoint inside.
            runs.append((args.prefix, checkpoint_prefix(args.prefix), args.epoch))
        for title, prefix, epoch in runs:
            timings = benchmark_checkpoint(prefix, epoch, args.faces, args.batch_size,
                                           bf16=not no_bf16, rounds=args.rounds)
            print(format_timings(title, timings))
            print(machine_load())
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
