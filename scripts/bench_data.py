r"""Training-data throughput: FaceSegIter (in-process, 1 worker, all cores) beside a single-process
baseline that follows the original toolkit's per-sample steps, measured in the same run.

Without --rec, the first --pack-count faces of a `.pts` folder (default: the shared 300-W
training faces) are packed into a temporary `.rec` first. The load average is printed before
and after the measurements: on a shared machine the rates move with it, the multi-worker ones
most.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import check_range, machine_load, run_cli  # noqa: E402
from config import generate_config  # noqa: E402
from data.converters import pack_pts_folder  # noqa: E402
from data.recordio import unpack_record  # noqa: E402
from data.records import RecordFile  # noqa: E402
from scripts.original_data import (baseline_samples_per_second,  # noqa: E402
                                   iterator_samples_per_second)

DEFAULT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'shared', 'data', '300w-train')
DEFAULT_PACK_COUNT = 300


def _pack_subset(source, count, out_dir):
    stems = sorted({os.path.splitext(name)[0] for name in os.listdir(source)
                    if name.endswith('.pts')})[:count]
    list_file = os.path.join(out_dir, 'subset.txt')
    with open(list_file, 'w') as handle:
        handle.write('\n'.join(stems) + '\n')
    return pack_pts_folder(source, out_dir, list_file=list_file, split='train').paths['train']


def _checked_rec(path):
    """`path` when its first record decodes; one-line ValueError naming it otherwise (the
    benchmarks would fail deep inside, or wait for a sample forever)."""
    records = RecordFile(path)
    try:
        if not len(records):
            raise ValueError('%s: no records' % records.rec_path)
        payload = records.read(records.offsets[0])   # its RecordError names the file
        try:
            unpack_record(payload)
        except ValueError as err:
            raise ValueError('%s: record %d: %s' % (records.rec_path, records.keys[0], err)) \
                from None
    finally:
        records.close()
    return path


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rec', help='training .rec to read (default: pack --source)')
    parser.add_argument('--source', help='.pts folder to pack (default %s)' % DEFAULT_SOURCE)
    parser.add_argument('--pack-count', type=int,
                        help='faces of --source to pack (default %d)' % DEFAULT_PACK_COUNT)
    parser.add_argument('--samples', type=int, default=300, help='samples per measurement')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=os.cpu_count(),
                        help='worker processes of the all-cores run (default: CPU count)')
    args = parser.parse_args(argv)
    for flag in ('--pack-count', '--samples', '--batch-size', '--workers'):
        check_range(flag, getattr(args, flag[2:].replace('-', '_')), minimum=1)
    if args.rec:
        given = [flag for flag, value in (('--source', args.source),
                                          ('--pack-count', args.pack_count)) if value is not None]
        if given:
            raise ValueError('%s given with --rec, which is read instead of packing them'
                             % ' and '.join(given))
        _checked_rec(args.rec)
    cfg = generate_config('hourglass', 'i2d')
    with tempfile.TemporaryDirectory() as tmp:
        rec = args.rec or _pack_subset(args.source or DEFAULT_SOURCE,
                                       args.pack_count or DEFAULT_PACK_COUNT, tmp)
        print(machine_load())
        baseline = baseline_samples_per_second(rec, cfg, args.samples, args.batch_size)
        print('%-40s %8.1f samples/s' % ('original per-sample steps (1 process)', baseline))
        for workers in sorted({0, 1, args.workers}):
            rate = iterator_samples_per_second(rec, cfg, args.samples, args.batch_size,
                                               workers)
            name = 'FaceSegIter, %d worker%s' % (workers, '' if workers == 1 else 's')
            print('%-40s %8.1f samples/s  %5.2fx' % (name, rate, rate / baseline))
        print(machine_load())
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
