r"""The same training recipe in float32 and in bf16, one PNG overlaying the two runs' loss and
validation NME curves, and the NME of both at every validation.

Everything after `--` is passed to train.py for both runs (use a fixed --seed); each run gets
its own --prefix under --output and its --dtype. The runs are fresh processes, one after the
other (--parallel: both at once, their output in <output>/<dtype>.log; then their speeds
are not comparable).

    python scripts/compare_dtypes.py --output outputs/dtypes -- --dataset synth2d \\
        --network hourglass --net-block resnet --net-n 4 --net-stacks 1 --multiplier 0.25 \\
        --net-loss ce --lr 2e-3 --lr-epoch-step 3,4 --verbose 50 --seed 0 --num-workers 1
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from fileio import check_writable_dir  # noqa: E402
from symbols.precision import DTYPES, check_dtype  # noqa: E402
from training.progress import RunLog, plot_runs  # noqa: E402

RESERVED = ('--prefix', '--dtype')


def train_command(train_args, prefix, dtype):
    return [sys.executable, os.path.join(ROOT, 'train.py')] + train_args + [
        '--prefix', prefix, '--dtype', dtype, '--force']


def run_all(commands, output, parallel):
    """Run {dtype: command}; ValueError naming the run that failed."""
    if not parallel:
        for dtype, command in commands.items():
            print('== %s: %s' % (dtype, ' '.join(command)), flush=True)
            if subprocess.call(command) != 0:
                raise ValueError('the %s run failed (see its output above)' % dtype)
        return
    logs = {dtype: open(os.path.join(output, '%s.log' % dtype), 'w') for dtype in commands}
    try:
        running = {dtype: subprocess.Popen(command, stdout=logs[dtype], stderr=subprocess.STDOUT)
                   for dtype, command in commands.items()}
        print('running %s at once; output in %s' % (
            ' and '.join(running), ', '.join(log.name for log in logs.values())), flush=True)
        failed = [dtype for dtype, process in running.items() if process.wait() != 0]
    finally:
        for log in logs.values():
            log.close()
    if failed:
        raise ValueError('the %s run failed (see %s)' % (
            failed[0], os.path.join(output, '%s.log' % failed[0])))


def nme_table(runs):
    """Lines: batch, each run's validation NMEs (%), and the bf16 - float32 difference."""
    by_batch = {label: {batch: nme for batch, nme in run.nmes} for label, run in runs.items()}
    batches = sorted(set.intersection(*(set(b) for b in by_batch.values())))
    targets = sorted({t for nmes in by_batch.values() for nme in nmes.values() for t in nme})
    lines = ['%7s %-10s %9s %9s %9s' % (('batch', 'target') + DTYPES + ('bf16-fp32',))]
    differences = []
    for batch in batches:
        for target in targets:
            values = [100 * by_batch[dtype][batch].get(target, np.nan) for dtype in DTYPES]
            differences.append(values[1] - values[0])
            lines.append('%7d %-10s %8.3f%% %8.3f%% %+8.3f' % (
                (batch, target) + tuple(values) + (differences[-1],)))
    if differences:
        lines.append('bf16 - float32 over %d validations: mean %+.3f, largest |difference| '
                     '%.3f NME points' % (len(differences), np.nanmean(differences),
                                          np.nanmax(np.abs(differences))))
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    own, train_args = (argv[:argv.index('--')], argv[argv.index('--') + 1:]) \
        if '--' in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', default=os.path.join('outputs', 'dtypes'),
                        help='folder for both runs, the PNG and the logs')
    parser.add_argument('--parallel', action='store_true', help='run both at once')
    args = parser.parse_args(own)
    reserved = [flag for flag in RESERVED if any(a.split('=')[0] == flag for a in train_args)]
    if not train_args or reserved:
        print('error: give train.py flags after "--"%s' % (
            ' without %s (set per run)' % ', '.join(reserved) if reserved else ''),
            file=sys.stderr)
        return 2
    try:
        check_dtype('bf16')
        check_writable_dir(args.output, '--output folder')
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    prefixes = {dtype: os.path.join(args.output, dtype, 'model') for dtype in DTYPES}
    commands = {dtype: train_command(train_args, prefixes[dtype], dtype) for dtype in DTYPES}
    try:
        run_all(commands, args.output, args.parallel)
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    runs = {dtype: RunLog('%s-log.jsonl' % prefixes[dtype], resume=True) for dtype in DTYPES}
    png = os.path.join(args.output, 'float32-vs-bf16.png')
    plot_runs(runs, png)
    print('\n'.join(nme_table(runs)))
    print('curves: %s' % png)
    return 0


if __name__ == '__main__':
    sys.exit(main())
