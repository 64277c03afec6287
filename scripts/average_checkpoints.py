r"""Average the weights of several checkpoints of one run (SWA), or of several runs of the same
graph (a weight soup), and measure BatchNorm's statistics again on training faces, into a new
checkpoint.

    python train.py ... --ckpt 2 --prefix model/swa/model      # a checkpoint every validation
    python scripts/average_checkpoints.py --prefix model/swa/model --epochs 8-24 \
        --output model/swa-avg/model [--bn-rec datasets/300w/train.rec --aug-shift 0.03 ...]
    python scripts/average_checkpoints.py --prefix model/a/model model/b/model --epochs 13-20 \
        --output model/soup/model          # the 16 checkpoints of both runs, equally weighted

The output is an ordinary checkpoint (`OUTPUT-symbol.json`, `OUTPUT-NNNN.params`) of the same
training graph; evaluate it with evaluate.py. See training/averaging.py for the method.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from config import BASE, generate_config  # noqa: E402
from console import check_range, progress, run_cli  # noqa: E402
from data.augment import check_augmentation_options  # noqa: E402
from data.iterator import FaceSegIter  # noqa: E402
from symbols import checkpoint  # noqa: E402
from symbols.heatmap_net import heatmap_output  # noqa: E402
from training.averaging import average_params, parse_epochs, recalibrate_batchnorm  # noqa: E402


# Settings of the --bn-rec pass when not given: the training defaults, no shift, occlusion or
# colour jitter.
BN_PASS_DEFAULTS = {'aug_rotation': BASE['aug_rotation'], 'aug_scale': BASE['aug_scale'],
                    'aug_shift': 0.0, 'aug_occlusion': 0.0, 'aug_color': 0.0, 'seed': 0,
                    'batch_size': 16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefix', required=True, nargs='+',
                        help='checkpoint prefix of the run; several prefixes (runs of the same '
                             'graph) are averaged together, --epochs of each')
    parser.add_argument('--epochs', required=True,
                        help='checkpoint numbers to average: FIRST-LAST or N,N,...')
    parser.add_argument('--output', required=True, help='prefix of the averaged checkpoint')
    parser.add_argument('--output-epoch', type=int, default=0)
    parser.add_argument('--bn-rec',
                        help='training .rec on which to update the BatchNorm statistics, as '
                             'training does (one pass, with the augmentation below); without '
                             'it the saved statistics are averaged like the weights')
    # The settings of the --bn-rec pass (BN_PASS_DEFAULTS): None when not given, so that one
    # given without --bn-rec is refused rather than ignored.
    parser.add_argument('--aug-rotation', type=int,
                        help="the run's train.py --aug-rotation (for --bn-rec; default %d)"
                             % BASE['aug_rotation'])
    parser.add_argument('--aug-scale', type=float,
                        help="the run's train.py --aug-scale (for --bn-rec; default %g)"
                             % BASE['aug_scale'])
    parser.add_argument('--aug-shift', type=float,
                        help="the run's train.py --aug-shift (for --bn-rec; default 0)")
    parser.add_argument('--aug-occlusion', type=float,
                        help="the run's train.py --aug-occlusion (for --bn-rec; default 0)")
    parser.add_argument('--aug-color', type=float,
                        help="the run's train.py --aug-color (for --bn-rec; default 0)")
    parser.add_argument('--seed', type=int, help='augmentation seed (for --bn-rec; default 0)')
    parser.add_argument('--batch-size', type=int, help='for --bn-rec; default 16')
    return parser.parse_args(argv)


def _updated_batchnorm(args, symbol, arg, aux, input_size, heatmap_size):
    """The BatchNorm statistics after one augmented training pass over --bn-rec."""
    settings = dict(BN_PASS_DEFAULTS, **{key: value for key, value in vars(args).items()
                                          if key in BN_PASS_DEFAULTS and value is not None})
    seed, batch_size = settings.pop('seed'), settings.pop('batch_size')
    cfg = generate_config(input_img_size=input_size, output_label_size=heatmap_size, **settings)
    faces = FaceSegIter(args.bn_rec, batch_size, cfg, aug_level=1, shuffle=True, seed=seed)
    try:
        batches = (batch.data[0].asnumpy() for batch in faces)
        return recalibrate_batchnorm(symbol, arg, aux, progress(
            batches, total=(faces.num_samples + batch_size - 1) // batch_size,
            desc='BatchNorm statistics'))
    finally:
        faces.close()


def _main(argv=None):
    args = parse_args(argv)
    epochs = parse_epochs(args.epochs)
    check_range('--batch-size', args.batch_size, minimum=1)
    check_augmentation_options(vars(args))
    if args.bn_rec is None:
        given = ['--' + key.replace('_', '-') for key in BN_PASS_DEFAULTS
                 if getattr(args, key) is not None]
        if given:
            raise ValueError('%s given without --bn-rec, the BatchNorm pass it is for'
                             % ', '.join(given))
    elif not os.path.isfile(args.bn_rec):
        raise ValueError('%s: no such .rec file' % args.bn_rec)
    if any(os.path.abspath(args.output) == os.path.abspath(p) for p in args.prefix):
        raise ValueError('--output %s is the run\'s own prefix; pick another so no checkpoint '
                         'of the run is overwritten' % args.output)
    symbol = checkpoint.load_symbol(checkpoint.symbol_path(args.prefix[0]))
    input_size, heatmap_size = checkpoint.network_sizes(heatmap_output(symbol), args.prefix[0])
    arg, aux = average_params([checkpoint.params_path(prefix, e)
                               for prefix in args.prefix for e in epochs])
    if args.bn_rec is not None:
        aux = _updated_batchnorm(args, symbol, arg, aux, input_size, heatmap_size)
    path = checkpoint.save_checkpoint(args.output, args.output_epoch, symbol, arg, aux)
    print('averaged %d checkpoints of %s (epochs %s); BatchNorm statistics %s -> %s' % (
        len(epochs) * len(args.prefix), ' and '.join(args.prefix), args.epochs,
        'updated on %s' % args.bn_rec if args.bn_rec else 'averaged', path))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
