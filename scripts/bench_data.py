"""Training-data throughput: FaceSegIter (in-process, 1 worker, all cores) beside a single-process
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

from console import machine_load  # noqa: E402
from config import generate_config  # noqa: E402
from data.converters import pack_pts_folder  # noqa: E402
from scripts.original_data import (baseline_samples_per_second,  # noqa: E402
                                   iterator_samples_per_second)

DEFAULT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'shared', 'data', '300w-train')


def _pack_subset(source, count, out_dir):
    stems = sorted({os.path.splitext(name)[0] for name in os.listdir(source)
                    if name.endswith('.pts')})[:count]
    list_file = os.path.join(out_dir, 'subset.txt')
    with open(list_file, 'w') as handle:
        handle.write('\n'.join(stems) + '\n')
    return pack_pts_folder(source, out_dir, list_file=list_file, split='train').paths['train']


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rec', help='training .rec to read (default: pack --source)')
    parser.add_argument('--source', default=DEFAULT_SOURCE, help='.pts folder to pack')
    parser.add_argument('--pack-count', type=int, default=300, help='faces to pack')
    parser.add_argument('--samples', type=int, default=300, help='samples per measurement')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=os.cpu_count(),
                        help='worker processes of the all-cores run (default: CPU count)')
    args = parser.parse_args()
    cfg = generate_config('hourglass', 'i2d')
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rec = args.rec or _pack_subset(args.source, args.pack_count, tmp)
            print(machine_load())
            baseline = baseline_samples_per_second(rec, cfg, args.samples, args.batch_size)
            print('%-40s %8.1f samples/s' % ('original per-sample steps (1 process)', baseline))
            for workers in sorted({0, 1, args.workers}):
                rate = iterator_samples_per_second(rec, cfg, args.samples, args.batch_size,
                                                   workers)
                name = 'FaceSegIter, %d worker%s' % (workers, '' if workers == 1 else 's')
                print('%-40s %8.1f samples/s  %5.2fx' % (name, rate, rate / baseline))
            print(machine_load())
        except (OSError, ValueError) as err:
            parser.exit(2, 'error: %s\n' % err)


if __name__ == '__main__':
    main()
