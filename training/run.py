"""`fit`: a training run from a config dict (config.generate_config) and explicit options."""
import logging
import os

from data.iterator import FaceSegIter
from data.synthetic import ensure_synthetic
from symbols.precision import prepare_bf16

from .distributed import create_kvstore
from .trainer import Trainer, seed_everything

logger = logging.getLogger(__name__)


def data_paths(cfg, require_val_targets=False):
    """(train .rec, {validation target: .rec}) of the config's data set; synthetic sets are
    generated on first use. Validation targets without a file are left out, as the original
    did, and named; with `require_val_targets` (targets the user named, not the preset's) a
    missing one is a ValueError."""
    data_dir = cfg['data_dir']
    if cfg.get('synthetic'):
        ensure_synthetic(data_dir, landmark_type=cfg['landmark_type'])
    train = os.path.join(data_dir, 'train.rec')
    if not os.path.isfile(train):
        raise ValueError('%s: training data not found (set --data-dir to the folder holding '
                         'train.rec and the validation .rec files)' % train)
    targets = {}
    for target in cfg['val_targets']:
        path = os.path.join(data_dir, '%s.rec' % target)
        if os.path.isfile(path):
            targets[target] = path
        elif require_val_targets:
            raise ValueError('%s: not found for --val-targets %s (the names of .rec files in '
                             '--data-dir, without .rec)' % (path, target))
        else:
            logger.warning('%s: missing, validation on %s skipped', path, target)
    return train, targets


def fit(cfg, contexts, resume=False, num_workers=None, seed=727, max_batches=None, force=False,
        require_val_targets=False):
    """Train `cfg` on `contexts` (a list of mx.Context); returns Trainer.run's summary.
    A fresh run refuses a prefix that holds an earlier run unless `force`, which replaces it
    once the run writes its first file. `require_val_targets`: see data_paths. With cfg['dtype']
    'bf16', AMX is switched on first (symbols.precision.prepare_bf16), before any operator
    runs."""
    if cfg['dtype'] == 'bf16':
        prepare_bf16()
    kvstore, rank, num_parts = create_kvstore(cfg['kvstore'])
    seed_everything(seed)
    train_rec, val_recs = data_paths(cfg, require_val_targets)
    batch_size = cfg['per_batch_size'] * len(contexts)
    train_iter = FaceSegIter(train_rec, batch_size, cfg, aug_level=1, shuffle=True,
                             num_workers=num_workers, seed=seed + rank, exf=cfg['exf'],
                             part_index=rank, num_parts=num_parts)
    val_iters = {}
    if rank == 0:
        val_iters = {t: FaceSegIter(p, cfg['per_batch_size'], cfg, aug_level=0, shuffle=False,
                                    num_workers=num_workers, top_shift=cfg['val_top_shift'])
                     for t, p in val_recs.items()}
    try:
        trainer = Trainer(cfg, contexts, train_iter, train_iter.num_samples, val_iters,
                          kvstore=kvstore, rank=rank, num_workers=num_parts, resume=resume,
                          max_batches=max_batches, force=force)
        return trainer.run()
    finally:
        for it in [train_iter] + list(val_iters.values()):
            close = getattr(it, 'close', None)
            if close:
                close()
