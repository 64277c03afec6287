"""Train a face-alignment network (flags as in the original train.py, plus a few extras).

  python train.py --network hourglass --dataset i2d --prefix ./model/model-hg2d3-cab/model
  python train.py --dataset synth2d --multiplier 0.25 --prefix ./model/demo/model
Parameter-server training:
  python scripts/launch_dist.py -n 2 -- python train.py --kvstore dist_sync ...
"""
import argparse
import os
import sys

import config
from console import check_range, configure_logging, run_cli
from data.augment import check_augmentation_options
from data.codec import TARGET_ENCODINGS
from data.geometry import ALIGN_SIZE
from fileio import check_writable_dir, removed_if_left_empty
from symbols.heatmap_net import LOSSES, validate as validate_network
from symbols.precision import DTYPES, check_dtype
from training import TrainingDiverged, fit
from training.distributed import KVSTORES, parse_contexts
from training.optimizer import OPTIMIZERS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--network', default='hourglass', choices=sorted(config.NETWORKS))
    p.add_argument('--dataset', default='i2d', choices=sorted(config.DATASETS))
    p.add_argument('--data-dir', help="folder with train.rec and the validation .rec files "
                                      "(default: the data set's preset)")
    p.add_argument('--prefix', help='checkpoint prefix: PREFIX-symbol.json, PREFIX-%%04d.params')
    p.add_argument('--pretrained', default='', help='PREFIX,EPOCH of a checkpoint, or a model '
                   'folder, to fine-tune: its arrays fill the network\'s parameters of the same '
                   'name and shape (the rest start random, e.g. another final layer); refused '
                   'when they fill fewer than half of them (another architecture)')
    p.add_argument('--grow-stacks', action='store_true',
                   help='--pretrained has fewer stacks than --net-stacks: each added stack '
                        'starts as a copy of its last one, fed through zeroed merge '
                        'convolutions, so training starts at the pretrained model\'s heatmaps')
    p.add_argument('--teacher', default='', help='PREFIX,EPOCH of a checkpoint, or a model '
                   'folder, to distil from: its heatmaps of each training batch are mixed into '
                   'the targets (same input size, heatmap size and loss as the student)')
    p.add_argument('--teacher-weight', type=float,
                   help="the teacher's share of each target, in (0, 1] (default 0.5)")
    p.add_argument('--teacher-flip-test', action='store_true',
                   help="average the teacher's maps of each crop and of its mirror image")
    p.add_argument('--resume', action='store_true',
                   help='continue the interrupted run saved under --prefix (its weights: not '
                        'with --pretrained or --force)')
    p.add_argument('--optimizer', choices=OPTIMIZERS)
    p.add_argument('--lr', type=float)
    p.add_argument('--wd', type=float)
    p.add_argument('--per-batch-size', type=int, help='batch size per device')
    p.add_argument('--lr-epoch-step', help='epochs at which lr *= 0.2; training ends at the last')
    p.add_argument('--ckpt', type=int, choices=(0, 1, 2),
                   help='1: save a checkpoint when validation improves and at the end; 2: at '
                        'every validation (for weight averaging); 0: never')
    p.add_argument('--exf', type=int, help='passes over the training set per epoch')
    p.add_argument('--frequent', type=int, help='log every this many batches')
    p.add_argument('--verbose', type=int, help='validate every this many batches')
    p.add_argument('--net-block', help='resnet, hpm, inception or cab')
    p.add_argument('--net-n', type=int, help='hourglass depth: each level halves the heatmap '
                   'side, so at most log2 of it (6 for 64 x 64 heatmaps)')
    p.add_argument('--net-stacks', type=int)
    p.add_argument('--multiplier', type=float, help='channel width multiplier')
    p.add_argument('--net-loss', choices=LOSSES, help="per-stack heatmap loss: 'l2' (the "
                   "original's default) or 'ce' (cross-entropy of each map's spatial softmax)")
    p.add_argument('--target-encoding', choices=TARGET_ENCODINGS,
                   help="where each target Gaussian sits: 'cell', the truncated heatmap cell "
                        "(the original's), or 'subpixel', the point's exact position")
    p.add_argument('--aug-rotation', type=int, help='rotations are whole degrees in '
                   '[-N, N) (default 40, the original\'s; 0: none)')
    p.add_argument('--aug-scale', type=float, help='sigma of the crop-side ratio, clipped at 1 '
                   'sigma (default 0.2, the original\'s: x0.8..1.2)')
    p.add_argument('--aug-shift', type=float, help='sigma of a random crop-centre shift per '
                   'axis, as a fraction of the crop side (0: none, as the original; clipped '
                   'at 2 sigma)')
    p.add_argument('--aug-occlusion', type=float,
                   help='probability of a random occluding rectangle on a training crop')
    p.add_argument('--aug-color', type=float,
                   help='half-range of random contrast and brightness gains (0.2: x0.8..1.2)')
    p.add_argument('--gpus', help="e.g. 0,1; '' or -1 for CPU (default: CUDA_VISIBLE_DEVICES)")
    p.add_argument('--kvstore', choices=KVSTORES)
    p.add_argument('--num-workers', type=int, help='data-loading worker processes')
    p.add_argument('--seed', type=int, default=727)
    p.add_argument('--val-targets', help='comma-separated names of validation .rec files in '
                   '--data-dir, each of which must be there (default: the data set preset\'s, '
                   'e.g. ibug,cofw_testset, of which those missing are skipped with a warning)')
    p.add_argument('--val-top-shift', type=int, help='crop top shift for validation (default: '
                   'the one pack_rec.py noted in the target\'s sidecar, else by target name, '
                   '30 for names outside the test sets)')
    p.add_argument('--force', action='store_true',
                   help='start over on a --prefix that holds an earlier run, replacing it')
    p.add_argument('--max-steps', type=int,
                   help='stop after this many batches in total (0: save the starting weights)')
    p.add_argument('--dtype', choices=DTYPES, help='float32 (default), or bf16: bfloat16 mixed '
                   'precision on a CPU with avx512_bf16/amx_bf16; weights and checkpoints stay '
                   'float32')
    return p.parse_args(argv)


CONFIG_FLAGS = ('data_dir', 'prefix', 'optimizer', 'lr', 'wd', 'per_batch_size', 'lr_epoch_step',
                'ckpt', 'exf', 'frequent', 'verbose', 'net_block', 'net_n', 'net_stacks',
                'multiplier', 'net_loss', 'kvstore', 'val_top_shift', 'target_encoding',
                'aug_rotation', 'aug_scale', 'aug_shift', 'aug_occlusion', 'aug_color', 'dtype')


def check_args(args):
    """Refuse out-of-range options up front, naming the allowed range."""
    for flag, minimum in (('per_batch_size', 1), ('frequent', 1), ('verbose', 1), ('exf', 1),
                          ('net_n', 1), ('net_stacks', 1), ('num_workers', 0),
                          ('max_steps', 0), ('wd', 0)):
        check_range('--' + flag.replace('_', '-'), getattr(args, flag), minimum=minimum)
    check_range('--lr', args.lr, above=0)
    check_range('--multiplier', args.multiplier, above=0)
    check_range('--val-top-shift', args.val_top_shift, minimum=0, maximum=ALIGN_SIZE)
    check_augmentation_options(vars(args))
    check_range('--teacher-weight', args.teacher_weight, above=0, maximum=1)
    if args.dtype is not None:
        check_dtype(args.dtype)


def checkpoint_spec(flag, value, folder_allowed=False):
    """(prefix, epoch) of a PREFIX,EPOCH flag value; with `folder_allowed`, a value without a
    comma is a model folder (epoch 0)."""
    if folder_allowed and ',' not in value:
        return value, 0
    prefix, _, epoch = value.rpartition(',')
    if not prefix or not epoch.isdigit():
        raise ValueError('%s must be PREFIX,EPOCH%s, got %r'
                         % (flag, ' or a model folder' if folder_allowed else '', value))
    return prefix, int(epoch)


def build_config(args):
    if args.resume and (args.pretrained or args.grow_stacks or args.force):
        # A resumed run continues from its own saved weights and files: --pretrained would
        # not be loaded (nor grown) and --force would remove nothing.
        raise ValueError('--resume continues the run saved under --prefix from its own weights; '
                         'drop %s' % ' and '.join(
                             flag for flag, given in (('--pretrained', args.pretrained),
                                                      ('--grow-stacks', args.grow_stacks),
                                                      ('--force', args.force)) if given))
    overrides = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    if args.pretrained:
        prefix, epoch = checkpoint_spec('--pretrained', args.pretrained, folder_allowed=True)
        overrides.update(pretrained=prefix, pretrained_epoch=epoch)
    if args.grow_stacks:
        if not args.pretrained:
            raise ValueError('--grow-stacks needs --pretrained, the checkpoint to grow')
        overrides['grow_stacks'] = True
    if args.teacher:
        prefix, epoch = checkpoint_spec('--teacher', args.teacher, folder_allowed=True)
        overrides.update(teacher=prefix, teacher_epoch=epoch,
                         teacher_flip_test=args.teacher_flip_test)
    elif args.teacher_weight is not None or args.teacher_flip_test:
        raise ValueError('--teacher-weight and --teacher-flip-test need --teacher')
    if args.teacher_weight is not None:
        overrides['teacher_weight'] = args.teacher_weight
    if args.val_targets:
        overrides['val_targets'] = [t.strip() for t in args.val_targets.split(',') if t.strip()]
        if not overrides['val_targets']:
            raise ValueError('--val-targets %r names no validation target' % args.val_targets)
    cfg = config.generate_config(args.network, args.dataset, **overrides)
    validate_network(cfg)   # before --force can replace anything, and before any data is read
    return cfg


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    check_args(args)
    cfg = build_config(args)
    contexts = parse_contexts(args.gpus)
    prefix_dir = os.path.dirname(cfg['prefix']) if cfg.get('prefix') else '.'
    try:
        # A run that fails to start leaves no empty --prefix folder of its own making.
        with removed_if_left_empty(prefix_dir):
            if cfg.get('prefix'):   # checkpoints, the run log and the resume state go there
                check_writable_dir(prefix_dir, '--prefix folder')
            summary = fit(cfg, contexts, resume=args.resume, num_workers=args.num_workers,
                          seed=args.seed, max_batches=args.max_steps, force=args.force,
                          require_val_targets=bool(args.val_targets))
    except TrainingDiverged as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    nme = ', '.join('%s %.3f%%' % (t, 100 * v) for t, v in summary['nme'].items()) or 'none'
    print('%s at batch %d; last validation NME: %s; last checkpoint: %s'
          % (summary['stopped'], summary['batch'], nme, summary['last_saved']))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
