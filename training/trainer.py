"""The training loop of the original train.py, on MXNet's Module API with the loop written out
so that it can stop cleanly (signals, NaN loss), resume, log and validate on schedule.

Behaviour kept from the original: batch size = per-device batch x devices; gradients rescaled
by 1 / devices (each device's loss is already a batch mean); the step learning-rate schedule of
training.schedule; validation NME every `verbose` batches; checkpoint number = batches //
verbose, saved when the first validation target or the mean of all targets improves on its best
so far and once more when training ends (`ckpt` 1; `ckpt` 2 saves at every validation, for
scripts/average_checkpoints.py). Not the original's: the best so far starts at the starting
weights' score (batch 0), not at 1.0, so a run above 100% NME still keeps its best point and a
fine-tuning run saves only what beats the weights it started from.
"""
import hashlib
import logging
import math
import os
import random
import signal
import time
import warnings

import mxnet as mx
import numpy as np

from inference.model_dir import checkpoint_prefix
from symbols import checkpoint, get_symbol, initializer
from symbols.heatmap_net import grow_stacks
from symbols.precision import MIN_BF16_TRAINING_CHANNELS, bf16_training_graph, check_dtype

from .distillation import Teacher
from .optimizer import create_optimizer, restore_scalar_state, scalar_state
from .progress import EpochBars, RunLog
from .resume import (load_optimizer_states, load_resume_state, resume_files, save_resume_state,
                     state_path)
from .schedule import ScheduleLR, StepSchedule, parse_epoch_steps
from .validation import Validator

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss stopped being finite; nothing was saved after the last good checkpoint."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between batches."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal = None
        self.previous = {}

    def _handle(self, signum, _frame):
        if self.signal is not None:     # asked twice: stop now, without saving
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:      # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def weights_digest(params):
    """SHA-1 of named arrays (names and bytes), to compare workers or runs."""
    digest = hashlib.sha1()
    for name in sorted(params):
        digest.update(name.encode())
        digest.update(params[name].asnumpy().tobytes())
    return digest.hexdigest()


def wait_for_batchnorm_statistics():
    """MXNet's BatchNorm writes its moving statistics in the backward pass without telling
    the engine, so reading them right after a backward pass may catch the previous batch's
    values: wait for all pending work before the statistics are read (validation, saving,
    weight averaging)."""
    mx.nd.waitall()


def param_shapes(symbol, data_shapes, label_shapes):
    shapes = dict(data_shapes + label_shapes)
    arg_shapes, _, aux_shapes = symbol.infer_shape(**shapes)
    return (dict(zip(symbol.list_arguments(), arg_shapes)),
            dict(zip(symbol.list_auxiliary_states(), aux_shapes)))


def earlier_run_files(prefix):
    """The files of a run already written at `prefix` (checkpoints, log, curves, resume
    state)."""
    names = [checkpoint.symbol_path(prefix), '%s-log.jsonl' % prefix, '%s-curves.png' % prefix]
    found = [name for name in names if os.path.exists(name)] + resume_files(prefix)
    return found + [checkpoint.params_path(prefix, e) for e in checkpoint.list_epochs(prefix)]


def refuse_earlier_run(prefix, force):
    """A fresh run never silently replaces another: ValueError unless `force`. Returns whether
    there is an earlier run for `force` to replace (remove_earlier_run)."""
    if not os.path.basename(prefix):
        raise ValueError('--prefix %r names a folder; add a file stem, e.g. %smodel'
                         % (prefix, prefix))
    found = earlier_run_files(prefix)
    if found and not force:
        raise ValueError('%s: holds an earlier run (%s); continue it with --resume, or pass '
                         '--force to start over and replace it'
                         % (prefix, ', '.join(os.path.basename(f) for f in found[:4])
                            + (' ...' if len(found) > 4 else '')))
    return bool(found)


def remove_earlier_run(prefix):
    """Remove the files of the run at `prefix` that --force replaces, so no checkpoint of
    another graph or stale resume state is left beside the new run's."""
    found = earlier_run_files(prefix)
    if found:
        logger.warning('%s: --force: removing the earlier run (%d files)', prefix, len(found))
        for name in found:
            os.remove(name)


def matching_params(loaded, shapes, source):
    """The loaded arrays whose name and shape the network has; prints what it leaves out."""
    kept = {k: v for k, v in loaded.items() if k in shapes and tuple(v.shape) == shapes[k]}
    skipped = sorted(set(loaded) - set(kept))
    if skipped:
        listed = ', '.join(skipped[:8]) + (' ...' if len(skipped) > 8 else '')
        logger.info('%s: %d arrays not used (absent from this network or another shape): %s',
                    source, len(skipped), listed)
    return kept


def check_transfer(path, filled, needed):
    """ValueError naming the checkpoint when its arrays fill fewer than half of the network's
    `needed` parameter arrays: then it is another architecture (--net-block, --net-n, ...), and
    training would silently start from random weights. An intended partial transfer, such as
    another final layer, fills nearly all of them."""
    if 2 * filled < needed:
        raise ValueError('%s: --pretrained fills only %d of the network\'s %d parameter arrays '
                         '(fewer than half: another architecture); give the network flags it '
                         'was trained with (--network, --net-block, --net-n, --net-stacks, '
                         '--multiplier)' % (path, filled, needed))


class Trainer:
    """One run: the module, its optimizer and schedule, validation and checkpoints.

    `kvstore` is a kvstore name or a created dist kvstore; `rank`/`num_workers` describe the
    worker among parameter-server workers (rank 0 validates, checkpoints and draws the bar).
    """

    def __init__(self, cfg, contexts, train_iter, epoch_size, val_iters=None, kvstore='device',
                 rank=0, num_workers=1, resume=False, max_batches=None, force=False):
        self.cfg = cfg
        self.prefix = cfg['prefix']
        # Refused now, before any work; with `force`, removed only just before this run writes
        # its first file (_claim_prefix), so a run that fails to start leaves it whole.
        self.replaces_earlier_run = rank == 0 and not resume and refuse_earlier_run(
            self.prefix, force)
        self.train_iter = train_iter
        self.rank = rank
        self.is_chief = rank == 0
        self.distributed = not isinstance(kvstore, str)
        self.num_stacks = cfg['net_stacks']
        self.symbol = get_symbol(cfg)
        self.batch_size = train_iter.provide_data[0][1][0]
        self.schedule = StepSchedule(cfg['lr'], parse_epoch_steps(cfg['lr_epoch_step']),
                                     self.batch_size, epoch_size)
        self.last_batch = self.schedule.total_batches
        if max_batches is not None:
            self.last_batch = min(self.last_batch, max_batches)
        self.batch = 0
        self.best = [None, None]    # (first target, mean): none scored yet
        self.last_saved = None
        self.last_state_batch = None
        self.last_nme = {}

        self.module = mx.mod.Module(self._training_graph(contexts), data_names=['data'],
                                    label_names=['softmax_label'], context=contexts)
        self.module.bind(data_shapes=train_iter.provide_data, label_shapes=train_iter.provide_label)
        arg, aux, states_path, optimizer_state = self._initial_params(resume)
        self.module.init_params(initializer(), arg_params=arg, aux_params=aux,
                                allow_missing=not resume, allow_extra=True)
        self.optimizer = create_optimizer(cfg['optimizer'], cfg['lr'], cfg['wd'],
                                          1.0 / (len(contexts) * num_workers),
                                          ScheduleLR(self.schedule))
        if optimizer_state:
            restore_scalar_state(self.optimizer, optimizer_state)
        with warnings.catch_warnings():
            # Module expects rescale_grad = 1/batch for a summed loss; ours is a batch mean.
            warnings.filterwarnings('ignore', message='Optimizer created manually')
            self.module.init_optimizer(kvstore=kvstore, optimizer=self.optimizer)
        if states_path and not self.distributed:
            load_optimizer_states(self.module, states_path)
        self.teacher = self._teacher(contexts[0])
        self.validator = Validator(self.symbol, contexts[0],
                                   (val_iters or {}) if self.is_chief else {}, cfg)
        log_name = '%s-log.jsonl' % self.prefix if self.is_chief \
            else '%s-log-rank%d.jsonl' % (self.prefix, rank)
        self.log = RunLog(log_name, resume=resume)
        self.bars = EpochBars(self.schedule, enabled=self.is_chief)

    def _training_graph(self, contexts):
        """The graph the module trains: `self.symbol` (what checkpoints save), or with
        cfg['dtype'] 'bf16' the same graph with AMP's bf16 casts and float32 parameters."""
        check_dtype(self.cfg['dtype'])
        if self.cfg['dtype'] == 'float32':
            return self.symbol
        if any(ctx.device_type != 'cpu' for ctx in contexts):
            raise ValueError('--dtype %s trains on the CPU only; drop --gpus or use --dtype '
                             'float32' % self.cfg['dtype'])
        shapes = dict(self.train_iter.provide_data + self.train_iter.provide_label)
        graph, float32 = bf16_training_graph(self.symbol, shapes)
        logger.info('training in bf16 mixed precision; in float32: the loss, up-sampling and '
                    '%d of the convolutions (grouped, fewer than %d channels, or mis-typed by '
                    'AMP)', len(float32), MIN_BF16_TRAINING_CHANNELS)
        return graph

    def _teacher(self, ctx):
        """The Teacher of cfg['teacher'] on `ctx`, or None when the run distils from none."""
        if not self.cfg.get('teacher'):
            return None
        if self.cfg['losstype'] != 'heatmap':
            raise ValueError('--teacher needs heatmap targets, this run trains on %s'
                             % self.cfg['losstype'])
        label_shape = self.train_iter.provide_label[0][1][1:]
        return Teacher(self.cfg['teacher'], self.cfg['teacher_epoch'],
                       self.cfg['teacher_weight'], self.cfg['teacher_flip_test'],
                       self.cfg['net_loss'], self.cfg['input_img_size'], label_shape, ctx=ctx,
                       batch_size=self.batch_size)

    def _initial_params(self, resume):
        """(arg, aux, optimizer-states path, optimizer scalars) from a resume state, a pretrained
        model, or nothing (all None: the initializer draws every parameter)."""
        if resume:
            state, arg, aux, states_path = load_resume_state(self.prefix)
            self._check_saved_graph(arg, aux)
            self._check_saved_schedule(state)
            self.batch = int(state['batch'])
            self.best = list(state['best'])
            self.last_saved = state.get('last_saved')
            self.last_state_batch = self.batch
            logger.info('resuming %s at batch %d', self.prefix, self.batch)
            self._seek_data(state.get('data'))
            return arg, aux, states_path, state['optimizer']
        if self.cfg.get('pretrained'):
            path = checkpoint.params_path(checkpoint_prefix(self.cfg['pretrained']),
                                          self.cfg['pretrained_epoch'])
            arg, aux = checkpoint.load_params(path)
            if self.cfg.get('grow_stacks'):
                arg, aux = grow_stacks(arg, aux, self.cfg['net_stacks'], source=path)
            arg_shapes, aux_shapes = param_shapes(self.symbol, self.train_iter.provide_data,
                                                  self.train_iter.provide_label)
            for inputs in ('data', 'softmax_label'):
                del arg_shapes[inputs]
            arg = matching_params(arg, arg_shapes, path)
            aux = matching_params(aux, aux_shapes, path)
            check_transfer(path, len(arg) + len(aux), len(arg_shapes) + len(aux_shapes))
            logger.info('fine-tuning from %s', path)
            return arg, aux, None, None
        return None, None, None, None

    def _check_saved_graph(self, arg, aux):
        """ValueError of one line when the resume state's weights are not this run's graph
        (other --multiplier, --net-* or --network than the saved run)."""
        arg_shapes, aux_shapes = param_shapes(self.symbol, self.train_iter.provide_data,
                                              self.train_iter.provide_label)
        for saved, shapes in ((arg, arg_shapes), (aux, aux_shapes)):
            needed = {n: s for n, s in shapes.items() if n not in ('data', 'softmax_label')}
            extra = sorted(set(saved) - set(needed))
            problem = checkpoint.param_mismatch(needed, saved) or (
                '%s is saved but not in this graph' % extra[0] if extra else None)
            if problem:
                raise ValueError('%s: the saved run\'s graph differs from this run\'s (%s); '
                                 'resume with the saved run\'s network flags (--network, '
                                 '--multiplier, --net-*)' % (state_path(self.prefix), problem))

    def _check_saved_schedule(self, state):
        """A resumed run may change --lr-epoch-step (to lengthen or shorten it) as long as every
        batch already trained had the rate the new schedule gives it; anything else is another
        run and fails with one line."""
        saved = state.get('schedule') or {}
        batch = int(state['batch'])
        if batch >= self.schedule.total_batches:
            raise ValueError('%s: the run is already at batch %d, the end of --lr-epoch-step %s '
                             '(batch %d); to train on, resume with a later last step'
                             % (state_path(self.prefix), batch,
                                ','.join(map(str, self.schedule.epoch_steps)),
                                self.schedule.total_batches))
        if saved == self._schedule_record():
            return
        try:
            old = StepSchedule(saved['base_lr'], saved['epoch_steps'], saved['batch_size'],
                               saved['epoch_size'])
        except (KeyError, TypeError, ValueError):
            old = None
        if old is None or not old.same_rates_until(self.schedule, batch):
            raise ValueError('%s: saved for schedule %s but this run has %s; resume with the '
                             'same --lr/--per-batch-size/devices/data, and --lr-epoch-step '
                             'steps that agree with the saved ones up to batch %d'
                             % (state_path(self.prefix), saved, self._schedule_record(), batch))
        logger.info('resuming with epoch steps %s instead of %s (the same rates up to batch %d)',
                    self.schedule.epoch_steps, old.epoch_steps, batch)

    def _schedule_record(self):
        s = self.schedule
        return {'base_lr': s.base_lr, 'epoch_steps': s.epoch_steps, 'batch_size': s.batch_size,
                'epoch_size': s.epoch_size}

    def _next_batch(self):
        for _ in range(2):
            try:
                return next(self.train_iter)
            except StopIteration:
                self.train_iter.reset()
        raise ValueError('the training iterator yields no batch of %d' % self.batch_size)

    def train_batch(self):
        """Train on the next batch; returns the mean per-stack heatmap loss."""
        batch = self._next_batch()
        if self.teacher is not None:
            batch = self.teacher.relabel(batch)
        loss = self._step(batch)
        self.batch += 1
        return loss

    def _step(self, data_batch):
        """Forward, backward and update one batch; returns the mean per-stack heatmap loss."""
        self.module.forward_backward(data_batch)
        outputs = self.module.get_outputs()
        loss = float(np.mean([outputs[i].asnumpy().mean() for i in range(self.num_stacks)]))
        if not math.isfinite(loss):
            resume = ('none' if self.last_state_batch is None else '%s (batch %d)' % (
                state_path(self.prefix), self.last_state_batch))
            raise TrainingDiverged('loss became %s at batch %d (lr %.3g); stopped before updating '
                                   'the weights. Last good checkpoint: %s; resume state: %s'
                                   % (loss, self.batch + 1, self.schedule.lr_at(self.batch + 1),
                                      self.last_saved or 'none', resume))
        self.module.update()
        return loss

    def run(self):
        """Train to the end of the schedule (or max_batches) or until a stop signal. Returns a
        summary: 'batch', 'stopped' ('finished' or 'interrupted'), 'best' (first target, mean),
        'nme' (the last validation), 'last_saved' (checkpoint path) and 'weights_sha1'."""
        if self.batch == 0:
            self._validate_start()
        window_loss, window_count, tic = 0.0, 0, time.time()
        stopped = 'finished'
        with StopRequest() as stop:
            while self.batch < self.last_batch:
                if stop.signal is not None:
                    stopped = 'interrupted'
                    break
                lr = self.schedule.lr_at(self.batch + 1)
                if self.batch and lr != self.schedule.lr_at(self.batch):
                    self.bars.write('lr change to %g' % lr)
                loss = self.train_batch()
                window_loss += loss
                window_count += 1
                speed = window_count * self.batch_size / max(time.time() - tic, 1e-9)
                self.bars.update(self.batch, speed, loss, lr)
                if self.batch % self.cfg['frequent'] == 0:
                    self._log({'kind': 'train', 'batch': self.batch, 'lr': lr,
                               'epoch': self.schedule.epoch_of(self.batch),
                               'loss': window_loss / window_count,
                               'samples_per_sec': round(speed, 2)})
                    self.bars.report(self.batch, speed, window_loss / window_count, lr)
                    window_loss, window_count, tic = 0.0, 0, time.time()
                if self.batch % self.cfg['verbose'] == 0 or self.batch == self.last_batch:
                    self._validate_and_save(final=self.batch == self.last_batch)
                    window_loss, window_count, tic = 0.0, 0, time.time()
        self.bars.close()
        if stopped == 'interrupted' and self.is_chief:
            self._save_resume_state()
            self.bars.write('stopped by signal %d at batch %d; resume with --resume (state in %s)'
                            % (stop.signal, self.batch, state_path(self.prefix)))
        wait_for_batchnorm_statistics()
        arg, aux = self.module.get_params()
        # Each worker keeps its own BatchNorm statistics (kvstore syncs weights only), so
        # workers compare by weights_sha1 and runs by both.
        summary = {'batch': self.batch, 'stopped': stopped, 'best': list(self.best),
                   'nme': self.last_nme, 'last_saved': self.last_saved,
                   'weights_sha1': weights_digest(arg), 'statistics_sha1': weights_digest(aux)}
        self._log(dict(summary, kind='end'))
        return summary

    def _claim_prefix(self):
        """Called before every file this run writes: the first call removes the earlier run
        that `force` replaces."""
        if self.replaces_earlier_run:
            remove_earlier_run(self.prefix)
            self.replaces_earlier_run = False

    def _log(self, record):
        self._claim_prefix()
        self.log.write(record)

    def _validate(self):
        wait_for_batchnorm_statistics()
        arg, aux = self.module.get_params()
        results = self.validator.run(arg, aux)
        self.last_nme = results
        for target, value in results.items():
            self.bars.write('[%d][%s]NME: %f' % (self.batch, target, value))
        return arg, aux, results

    def _log_validation(self, results, saved):
        self._log({'kind': 'val', 'batch': self.batch, 'nme': results,
                   'mean': float(np.mean(list(results.values()))) if results else None,
                   'saved': saved})
        self.log.plot('%s-curves.png' % self.prefix)

    def _validate_start(self):
        """The starting weights' NME (fresh or --pretrained), logged at batch 0 so the curves
        show where training began, and the best so far that a checkpoint must beat; nothing is
        saved."""
        if self.is_chief and self.validator.iterators:
            results = self._validate()[2]
            self._improves(results)
            self._log_validation(results, None)

    def _improves(self, results):
        """Whether `results` beat the best first-target or mean NME so far, which they then
        become."""
        improved = False
        if results:
            values = list(results.values())
            for slot, value in enumerate((values[0], float(np.mean(values)))):
                if self.best[slot] is None or value < self.best[slot]:
                    self.best[slot], improved = value, True
        return improved

    def _validate_and_save(self, final):
        if not self.is_chief:
            return
        arg, aux, results = self._validate()
        improved = self._improves(results)
        saved = None
        if self.cfg['ckpt'] == 2 or (self.cfg['ckpt'] == 1 and (improved or final)):
            number = self.batch // self.cfg['verbose']
            self._claim_prefix()
            saved = checkpoint.save_checkpoint(self.prefix, number, self.symbol, arg, aux)
            self.last_saved = saved
            self.bars.write('saving %d -> %s' % (number, saved))
        self._log_validation(results, saved)
        self._save_resume_state()

    def _seek_data(self, position):
        """Put the training iterator where the stopped run's was (its resume state's `data`),
        so the resumed run trains on the same batches as an uninterrupted one would. Iterators
        without positions (mx.io.NDArrayIter in tests) start their data again."""
        if position is None or not hasattr(self.train_iter, 'seek'):
            return
        if position['batches']:
            logger.info('drawing again the first %d batches of epoch %d of the training data, '
                        'to continue after them', position['batches'], position['epoch'])
        self.train_iter.seek(position['epoch'], position['batches'])

    def _data_position(self):
        """Where the training iterator is (FaceSegIter: its epoch and batches read in it)."""
        if not hasattr(self.train_iter, 'batches_in_epoch'):
            return None
        return {'epoch': self.train_iter.epoch, 'batches': self.train_iter.batches_in_epoch}

    def _save_resume_state(self):
        self._claim_prefix()
        wait_for_batchnorm_statistics()
        state = {'batch': self.batch, 'best': self.best, 'last_saved': self.last_saved,
                 'optimizer': scalar_state(self.optimizer, self.batch),
                 'schedule': self._schedule_record(), 'data': self._data_position()}
        save_resume_state(self.prefix, self.module, state,
                                     with_optimizer=not self.distributed)
        self.last_state_batch = self.batch
