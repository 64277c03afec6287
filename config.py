"""Network, data-set and training presets of the toolkit, as plain data.

Nothing here is mutated: `generate_config` returns a new dict merged from the presets and the
caller's overrides, and every builder takes that dict (or explicit arguments) as input.
"""
import copy

# Keys every network/data-set combination has, with the original toolkit's defaults.
BASE = {
    'num_classes': 68,
    'record_img_size': 384,     # side of the JPEG stored in a .rec record
    'base_scale': 256,          # face scale inside the record image
    'input_img_size': 128,      # network input side
    'output_label_size': 64,    # heatmap side
    'label_xfirst': False,      # .rec labels are (y, x) pairs
    'losstype': 'heatmap',
    'net_loss': 'l2',           # per-stack heatmap loss: 'l2' or 'ce'
    'net_coherent': False,
    'multiplier': 1.0,
    'gaussian': 1,              # heatmap sigma
    'target_encoding': 'cell',  # Gaussian target on the truncated cell, or 'subpixel'
    'per_batch_size': 16,
    # Training augmentation (docs/data-format.md §5). The original's rotation range (whole
    # degrees in [-40, 40)) and scale sigma (ratio clip(1 + 0.2 N, 0.8, 1.2)):
    'aug_rotation': 40,
    'aug_scale': 0.2,
    # Beyond the original's (§5.1), off by default: crop-centre shift sigma (fraction of the
    # crop side), occluder probability, colour gains.
    'aug_shift': 0.0,
    'aug_occlusion': 0.0,
    'aug_color': 0.0,
}

NETWORKS = {
    'hourglass': {'net_coherent': False, 'net_sat': 0, 'net_n': 3, 'net_dcn': 0,
                  'net_stacks': 2, 'net_block': 'cab', 'net_binarize': False,
                  'losstype': 'heatmap'},
    'satnet': {'net_coherent': False, 'net_sat': 1, 'net_n': 3, 'net_dcn': 0,
               'net_stacks': 2, 'net_block': 'cab', 'net_binarize': False,
               'losstype': 'heatmap'},
}

_TWO_D = {'dataset': '2D', 'landmark_type': '2d', 'num_classes': 68, 'record_img_size': 384,
          'base_scale': 256, 'input_img_size': 128, 'output_label_size': 64,
          'label_xfirst': False}
_THREE_D = dict(_TWO_D, dataset='3D', landmark_type='3d')

DATASETS = {
    # Released data sets: `data_dir` is where train.rec and the validation .rec files live.
    'i2d': dict(_TWO_D, data_dir='data_2d', val_targets=['ibug', 'cofw_testset']),
    'i3d': dict(_THREE_D, data_dir='data_3d', val_targets=['AFLW2000-3D']),
    # Built-in synthetic faces, generated on first use (see data/synthetic.py).
    'synth2d': dict(_TWO_D, data_dir='datasets/synth2d', val_targets=['val'], synthetic=True),
    'synth3d': dict(_THREE_D, data_dir='datasets/synth3d', val_targets=['val'], synthetic=True),
}

TRAINING = {
    'network': 'satnet',
    'dataset': 'i3d',
    'pretrained': '',
    'pretrained_epoch': 0,
    # Start the added stacks of a deeper network from --pretrained's last stack
    # (symbols.heatmap_net.grow_stacks).
    'grow_stacks': False,
    # Knowledge distillation (training/distillation.py): a teacher checkpoint whose heatmaps,
    # mixed in with this weight, become part of the targets; '' for none.
    'teacher': '',
    'teacher_epoch': 0,
    'teacher_weight': 0.5,
    'teacher_flip_test': False,
    'frequent': 20,
    'verbose': 200,
    'kvstore': 'device',
    'prefix': 'model/satnet',
    'end_epoch': 10000,
    'lr': 0.00025,
    'wd': 0.0,
    'per_batch_size': 16,
    'lr_epoch_step': '20,35,45',
    'optimizer': 'onadam',
    # 'float32', or 'bf16': bfloat16 mixed precision on CPUs that have it (symbols.precision);
    # weights, gradients and checkpoints stay float32 either way.
    'dtype': 'float32',
    'exf': 1,
    'ckpt': 1,
    # Crop top shift of the validation targets; None: each target's own (by file name,
    # docs/protocol.md §3.1). Set it to the --top-shift the validation records were packed with.
    'val_top_shift': None,
}

# The architecture and loss of the shipped model, models/hg1d4-resnet-m025-300w (its model card),
# as overrides of the 'hourglass' network preset.
SHIPPED_NETWORK = {'net_block': 'resnet', 'net_n': 4, 'net_stacks': 1, 'multiplier': 0.25,
                   'net_loss': 'ce'}


def _choose(kind, name, table):
    if name not in table:
        raise ValueError('unknown %s %r; valid: %s' % (kind, name, ', '.join(sorted(table))))
    return table[name]


def generate_config(network='hourglass', dataset='i2d', **overrides):
    """Return a new dict: BASE, then TRAINING, the network and data-set presets, then overrides."""
    cfg = copy.deepcopy(BASE)
    cfg.update(copy.deepcopy(TRAINING))
    cfg.update(copy.deepcopy(_choose('network', network, NETWORKS)))
    cfg.update(copy.deepcopy(_choose('dataset', dataset, DATASETS)))
    cfg.setdefault('synthetic', False)
    cfg['network'] = network
    cfg['dataset'] = dataset
    return override(cfg, **overrides)


def override(cfg, **overrides):
    """A copy of `cfg` with `overrides`, which must name keys it already has (so a typo fails
    instead of being silently ignored)."""
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise ValueError('unknown config keys: %s' % ', '.join(unknown))
    merged = dict(cfg)
    merged.update(overrides)
    return merged
