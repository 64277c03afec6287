r"""Fit a checkpoint's shape prior (data/shape_prior.py) and choose its noise settings on
validation faces; write it beside the checkpoint, where FaceAligner, test.py and
`evaluate.py --shape-prior` find it.

    python scripts/fit_shape_prior.py --prefix models/hg1d4-resnet-m025-300w \
        --train datasets/300w/train.rec --val datasets/300w/val.rec
    python scripts/fit_shape_prior.py --prefix models/hg1d4-resnet-m025-3d --landmark-type 3d \
        --top-shift 30 --train datasets/aflw2000-3d-dev/train.rec \
        --val datasets/aflw2000-3d-dev/val.rec

The Gaussian shape model and the model's error per coordinate come from the training faces'
ground-truth crops; every (scale, exponent) of the grid is then scored on the validation
faces, with the same decoding and flip test, and the lowest NME is kept. Prints the grid.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from console import check_range, configure_logging, run_cli  # noqa: E402
from data.codec import DECODE_METHODS  # noqa: E402
from data.geometry import ALIGN_SIZE, TOP_SHIFT  # noqa: E402
from data.recordio import top_shift_for  # noqa: E402
from data.shape_prior import fit_shape_prior, tune_shape_prior  # noqa: E402
from evaluation.metrics import NORMALISER, point_errors  # noqa: E402
from evaluation.protocol import protocol_predictions  # noqa: E402
from fileio import check_writable_dir  # noqa: E402
from inference import BACKENDS, load_heatmap_model  # noqa: E402
from inference.model_dir import checkpoint_prefix, params_digest, shape_prior_path  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefix', required=True, help='checkpoint prefix or model directory')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--train', required=True, help='training .rec: the fit')
    parser.add_argument('--val', required=True, help='validation .rec: the choice of settings')
    parser.add_argument('--top-shift', type=int, default=None,
                        help='top shift both .rec files were packed with (default: each '
                             'file\'s own, noted by pack_rec.py, else the 300W preset, 40)')
    parser.add_argument('--landmark-type', choices=sorted(NORMALISER), default='2d',
                        help='picks the NME normaliser the settings are chosen by: eye-centre '
                             'distance (2d) or ground-truth box (3d)')
    parser.add_argument('--decode', choices=DECODE_METHODS, default='subpixel')
    parser.add_argument('--no-flip-test', dest='flip_test', action='store_false',
                        help='fit to single-pass predictions (default: with the flip test)')
    parser.add_argument('--backend', choices=BACKENDS, default='auto')
    parser.add_argument('--output', help='where to write it (default: shape-prior.npz beside '
                                         'the checkpoint)')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()

    def nme(points, ground_truth):
        return float(point_errors(points, ground_truth, NORMALISER[args.landmark_type]).mean())

    check_range('--top-shift', args.top_shift, minimum=0, maximum=ALIGN_SIZE)
    for path in (args.train, args.val):
        if not os.path.isfile(path):
            raise ValueError('%s: no such .rec file' % path)
    # Checked before the minutes of fitting, not when the fit is saved.
    output = args.output or shape_prior_path(args.prefix)
    if os.path.isdir(output):
        raise ValueError('%s: --output is a folder; name the .npz file to write' % output)
    check_writable_dir(os.path.dirname(output), '--output folder')
    model = load_heatmap_model(args.prefix, args.epoch, args.backend, batch_size=16,
                               flip_test=args.flip_test)
    digest = params_digest(checkpoint_prefix(args.prefix), args.epoch)
    def top_shift(path):
        return (top_shift_for(path, preset=TOP_SHIFT['300W']) if args.top_shift is None
                else args.top_shift)

    _, truth, points, variances = protocol_predictions(model, args.train,
                                                       top_shift(args.train), args.decode)
    prior = fit_shape_prior(truth, points, variances, params_sha256=digest)
    _, val_truth, val_points, val_variances = protocol_predictions(
        model, args.val, top_shift(args.val), args.decode)
    prior, rows = tune_shape_prior(prior, val_points, val_variances, val_truth, nme)
    print('%d training faces, %d validation faces; decode %s, flip test %s'
          % (len(truth), len(val_truth), args.decode, 'on' if args.flip_test else 'off'))
    without = nme(val_points, val_truth)
    print('validation NME without the prior: %.3f%%' % (100 * without))
    for scale, exponent, error in rows:
        print('scale %-5g exponent %-3g %.3f%%' % (scale, exponent, 100 * error))
    best = min(error for _, _, error in rows)
    if not best < without:
        # FaceAligner, test.py and compare_dlib.py use a prior beside its checkpoint unasked:
        # one that makes the validation faces worse must not land there.
        raise ValueError('%s: no setting of the prior beat no prior on the validation faces '
                         '(best %.3f%% against %.3f%%); nothing written to %s'
                         % (args.val, 100 * best, 100 * without, output))
    prior.save(output)
    print('chose scale %g, exponent %g; wrote %s' % (prior.scale, prior.exponent, output))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
