r"""One row of a model card's ablation table: a checkpoint's NME on the validation split and on
a test set, decoded and cropped every way the 2D card reports. Selection uses the first
column only; the test columns are for reporting.

    python scripts/ablation_row.py --prefix model/p5/model --epoch 30 \
        --val datasets/300w/val.rec --test datasets/helen/300W.rec

Columns: validation argmax; test argmax; test argmax with the flip test; test `dark` against
the unfloored ground truth, without and with the flip test; test argmax on MTCNN crops,
without the refinement pass, with it answering by the second pass, and with it answering by
the mean of both passes as FaceAligner does (faces MTCNN misses are left out and counted).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from console import run_cli  # noqa: E402
from data.geometry import TOP_SHIFT  # noqa: E402
from data.recordio import top_shift_for  # noqa: E402
import essh  # noqa: E402
from evaluation.protocol import evaluate_rec  # noqa: E402
from inference import BACKENDS, load_heatmap_model  # noqa: E402
from inference.model import FlipTest  # noqa: E402

# (column, data set, decode, flip test, floored ground truth, detector crop, refine answer)
COLUMNS = [('validation, argmax', 'val', 'argmax', False, True, False, 'none'),
           ('test argmax', 'test', 'argmax', False, True, False, 'none'),
           ('test argmax, flip', 'test', 'argmax', True, True, False, 'none'),
           ('test dark, unfloored', 'test', 'dark', False, False, False, 'none'),
           ('test dark, unfloored, flip', 'test', 'dark', True, False, False, 'none'),
           ('test MTCNN crop, argmax', 'test', 'argmax', False, True, True, 'none'),
           ('test MTCNN + refine, argmax', 'test', 'argmax', False, True, True, 'second'),
           ('test MTCNN + refine mean, argmax', 'test', 'argmax', False, True, True, 'mean')]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefix', required=True,
                        help='checkpoint prefix or model directory')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--val', required=True, help='validation .rec (selection)')
    parser.add_argument('--test', required=True, help='test .rec (reported only)')
    parser.add_argument('--top-shift', type=int, default=None,
                        help='top shift both .rec files were packed with (default: each '
                             'file\'s own, noted by pack_rec.py, else the 300W preset, 40)')
    parser.add_argument('--backend', choices=BACKENDS, default='auto')
    parser.add_argument('--skip-detector', action='store_true',
                        help='leave out the MTCNN columns (the slow ones)')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    for path in (args.val, args.test):
        if not os.path.isfile(path):
            raise ValueError('%s: no such .rec file' % path)
    plain = load_heatmap_model(args.prefix, args.epoch, args.backend, batch_size=16)
    flipped = FlipTest(plain)    # the same loaded network, not a second copy
    detector = None if args.skip_detector else essh.load_detector('mtcnn')
    top_shift = {split: top_shift_for(path, preset=TOP_SHIFT['300W'])
                 if args.top_shift is None else args.top_shift
                 for split, path in (('val', args.val), ('test', args.test))}
    cells = []
    for title, split, decode, flip, floored, detected, refine in COLUMNS:
        if detected and detector is None:
            continue
        result = evaluate_rec(flipped if flip else plain, args.val if split == 'val' else args.test,
                              split, '2d', top_shift[split], decode=decode,
                              detector=detector if detected else None,
                              floor_ground_truth=floored, refine=refine)
        missed = ' (%d missed)' % len(result.skipped) if result.skipped else ''
        cells.append('%.3f%%%s' % (100 * result.mean_nme, missed))
        print('%-34s %s' % (title, cells[-1]), flush=True)
    print('| %s:%d | %s |' % (args.prefix, args.epoch, ' | '.join(cells)))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
