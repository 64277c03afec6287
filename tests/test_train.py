import json
import os
import re
import signal
import subprocess
import time

import mxnet as mx
import numpy as np
import pytest

import config
import train
from conftest import ROOT
from helpers import run_tiny_training, snapshot, train_command
from data.codec import encode_heatmaps
from inference import HeatmapModel
from training import Trainer, TrainingDiverged
from training.trainer import seed_everything
from symbols.checkpoint import load_params
from training.resume import load_resume_state, state_path

TINY = dict(multiplier=0.125, net_n=1, net_stacks=1, per_batch_size=4)


def tiny_config(prefix, **overrides):
    settings = dict(TINY, prefix=str(prefix), frequent=1, verbose=1000, lr=1e-3,
                    lr_epoch_step='100')
    settings.update(overrides)
    return config.generate_config('hourglass', 'synth2d', **settings)


def face_batch(n, seed):
    """Random images with heatmap targets of jittered points (a stand-in data set)."""
    rng = np.random.RandomState(seed)
    points = rng.uniform(32, 96, size=(n, 68, 2))
    data = rng.uniform(0, 255, size=(n, 3, 128, 128)).astype(np.float32)
    label = np.stack([encode_heatmaps(p) for p in points])
    return data, label


def cross_entropy_floor(label):
    """The smallest mean ce_loss over `label` maps: softmax equal to each normalised map."""
    maps = label.reshape(label.shape[0], label.shape[1], -1).astype(np.float64)
    share = maps / maps.sum(axis=2, keepdims=True)
    return float(-(maps * np.log(np.where(maps > 0, share, 1.0))).sum() / maps.size)


def read_log(prefix):
    with open('%s-log.jsonl' % prefix) as f:
        return [json.loads(line) for line in f]


# Excess loss left after 30 batches (last 5 over first 5), as a fraction; measured over seeds
# 0-2: l2 0.44-0.47, ce 0.63-0.70 at lr 1e-2 on these random faces. A model that does not
# learn stays near 1.
@pytest.mark.parametrize('net_loss, lr, remaining', [('l2', 1e-3, 0.7), ('ce', 1e-2, 0.8)])
def test_loss_falls_over_30_batches(tmp_path, net_loss, lr, remaining):
    seed_everything(0)
    prefix = tmp_path / 'model'
    data, label = face_batch(8, seed=0)
    train_iter = mx.io.NDArrayIter(data, label, 4, shuffle=True, label_name='softmax_label')
    cfg = tiny_config(prefix, net_loss=net_loss, lr=lr)
    summary = Trainer(cfg, [mx.cpu()], train_iter, 8, max_batches=30).run()
    assert (summary['batch'], summary['stopped']) == (30, 'finished')
    assert summary['last_saved'] == str(prefix) + '-0000.params'
    assert read_log(prefix)[-1] == dict(summary, kind='end', time=read_log(prefix)[-1]['time'])
    losses = [r['loss'] for r in read_log(prefix) if r['kind'] == 'train']
    assert len(losses) == 30
    # Cross-entropy cannot go below its value at softmax = normalised target.
    floor = cross_entropy_floor(label) if net_loss == 'ce' else 0.0
    assert floor < min(losses)
    assert np.mean(losses[-5:]) - floor < remaining * (np.mean(losses[:5]) - floor)
    assert os.path.exists(str(prefix) + '-symbol.json')
    assert os.path.exists(str(prefix) + '-curves.png')


def test_cli_flags_reach_the_config():
    args = train.parse_args(['--dataset', 'synth2d', '--net-loss', 'ce', '--multiplier', '0.25',
                             '--net-block', 'resnet', '--val-targets', 'val,test',
                             '--val-top-shift', '40'])
    cfg = train.build_config(args)
    assert (cfg['net_loss'], cfg['multiplier'], cfg['net_block']) == ('ce', 0.25, 'resnet')
    assert cfg['val_targets'] == ['val', 'test'] and cfg['val_top_shift'] == 40
    assert train.build_config(train.parse_args([]))['val_top_shift'] is None
    with pytest.raises(SystemExit):
        train.parse_args(['--net-loss', 'huber'])


def test_a_checkpoint_is_saved_only_when_it_beats_every_score_before_it(tmp_path):
    """--ckpt 1 saves a validation that beats the best so far, the starting weights' included
    (a fine-tuning run must beat the weights it started from; the original started from
    100% NME), and the last one. These random faces score about 390% falling to 260%, which
    the original's rule would never have saved before the end."""
    prefix = tmp_path / 'model'
    data, label = face_batch(8, seed=4)
    train_iter = mx.io.NDArrayIter(data, label, 4, shuffle=False, label_name='softmax_label')
    val_iter = mx.io.NDArrayIter(data[:4], label[:4], 4, label_name='softmax_label')
    seed_everything(0)
    Trainer(tiny_config(prefix, verbose=2, lr=1e-2, lr_epoch_step='4'), [mx.cpu()], train_iter,
            8, {'val': val_iter}).run()
    scores = [(r['batch'], r['nme']['val'], r['saved']) for r in read_log(prefix)
              if r['kind'] == 'val']
    assert [batch for batch, _, _ in scores] == [0, 2, 4, 6, 8]
    for index, (batch, nme, saved) in enumerate(scores[1:], 1):
        best_before = min(score for _, score, _ in scores[:index])
        assert bool(saved) == (nme < best_before or batch == 8), scores


def test_resuming_a_finished_run_is_refused(tmp_path):
    """A run that reached the end of its schedule has nothing left to resume: one line saying
    so, instead of a second, empty end record."""
    data, label = face_batch(8, seed=5)

    def trainer(resume=False):
        batches = mx.io.NDArrayIter(data, label, 4, shuffle=False, label_name='softmax_label')
        return Trainer(tiny_config(tmp_path / 'model', lr_epoch_step='1'), [mx.cpu()], batches,
                       8, resume=resume)

    assert trainer().run()['batch'] == 2
    with pytest.raises(ValueError, match=r'the run is already at batch 2, the end of '
                                         r'--lr-epoch-step 1 \(batch 2\); to train on'):
        trainer(resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    prefix = tmp_path / 'model'
    data, label = face_batch(12, seed=1)
    label[8:] = np.nan                                  # the third batch is poisoned
    train_iter = mx.io.NDArrayIter(data, label, 4, shuffle=False, label_name='softmax_label')
    val_iter = mx.io.NDArrayIter(data[:4], label[:4], 4, label_name='softmax_label')
    trainer = Trainer(tiny_config(prefix, verbose=2), [mx.cpu()], train_iter, 12,
                      {'val': val_iter})
    with pytest.raises(TrainingDiverged, match='loss became nan at batch 3'):
        trainer.run()
    # The starting weights are validated (logged, never saved), then every 2 batches.
    assert [(r['batch'], r['saved']) for r in read_log(prefix) if r['kind'] == 'val'] == \
        [(0, None), (2, None)]
    state, arg, aux, states = load_resume_state(str(prefix))
    assert state['batch'] == 2 and states and os.path.exists(states)
    assert all(np.isfinite(v.asnumpy()).all() for v in list(arg.values()) + list(aux.values()))
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ['model-curves.png', 'model-log.jsonl', 'model-resume-00000002.params',
                     'model-resume-00000002.states', 'model-state.json']


def wait_for_batch(prefix, batch, proc, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists('%s-log.jsonl' % prefix):
            done = [r['batch'] for r in read_log(prefix) if r['kind'] == 'train']
            if done and done[-1] >= batch:
                return
        time.sleep(0.2)
    raise AssertionError('training never reached batch %d' % batch)


def test_sigterm_then_resume_continues_the_schedule(synth_dir, tmp_path):
    """32 records / batch 4 = 8 batches an epoch: lr drops after batch 16, training ends at 32.
    The SIGTERM goes to the whole process group, as `timeout` or a batch scheduler sends it,
    with data workers running: one of them killed while it held the task queue's lock used to
    leave closing the pool waiting for ever."""
    prefix = tmp_path / 'model'
    schedule = ['--lr-epoch-step', '2,4', '--verbose', '4']
    proc = subprocess.Popen(train_command(synth_dir, prefix, *schedule, '--num-workers', '2'),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_for_batch(prefix, 6, proc)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert 'stopped by signal %d' % signal.SIGTERM in out
    # No terminal, so no bar: a plain line every --frequent batches (1 here) instead.
    assert re.search(r'\[1\] epoch 0: [\d.]+ samples/s loss [\d.]+ lr 1.00e-03', out), out
    stopped_at = json.load(open(state_path(str(prefix))))['batch']
    assert 6 <= stopped_at < 16
    assert [r['batch'] for r in read_log(prefix) if r['kind'] == 'train'] == \
        list(range(1, stopped_at + 1))

    result = subprocess.run(train_command(synth_dir, prefix, *schedule, '--resume',
                                          '--max-steps', '20'),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'resuming %s at batch %d' % (prefix, stopped_at) in result.stdout
    records = [r for r in read_log(prefix) if r['kind'] == 'train']
    assert [r['batch'] for r in records] == list(range(1, 21))
    assert all(r['lr'] == pytest.approx(1e-3 if r['batch'] <= 16 else 2e-4) for r in records)
    # The starting weights are scored once, by the fresh run, not again on resuming.
    validated = [r['batch'] for r in read_log(prefix) if r['kind'] == 'val']
    assert validated[0] == 0 and validated[1:] == list(range(4, 21, 4))
    state, arg, _, _ = load_resume_state(str(prefix))
    assert state['batch'] == 20 and state['optimizer']['num_update'] == 20
    assert set(arg) == set(load_params(str(prefix) + '-0005.params')[0])


def test_two_device_run_resumed_midway_matches_an_uninterrupted_one(tmp_path):
    """Data parallel over two contexts (kvstore 'device': the optimizer runs in the kvstore);
    stopping at an epoch boundary and resuming replays the same batches, so weights agree."""
    data, label = face_batch(16, seed=2)
    devices = [mx.cpu(0), mx.cpu(1)]

    def trainer(prefix, max_batches, resume=False):
        seed_everything(0)
        batches = mx.io.NDArrayIter(data, label, 8, shuffle=False, label_name='softmax_label')
        cfg = tiny_config(prefix, verbose=2, kvstore='device', lr_epoch_step='2,3')
        return Trainer(cfg, devices, batches, 16, max_batches=max_batches, resume=resume)

    straight = trainer(tmp_path / 'straight', 6)
    assert straight.batch_size == 8 and straight.module._update_on_kvstore
    want = straight.run()
    assert trainer(tmp_path / 'split', 4).run()['batch'] == 4
    resumed = trainer(tmp_path / 'split', 6, resume=True)
    assert resumed.batch == 4
    # Only the weights: the resume state keeps the devices' mean BatchNorm statistics, not
    # each device's own, so the resumed run's statistics differ from the uninterrupted one's.
    assert resumed.run()['weights_sha1'] == want['weights_sha1']


def test_a_run_resumed_mid_epoch_trains_on_the_batches_it_would_have(tmp_path):
    """10 records in batches of 4 are 3 batches an epoch; stopped at batch 4 (one batch into
    the second epoch) and resumed, the run reads the data from there on and ends on the
    uninterrupted run's weights and statistics."""
    from data.iterator import FaceSegIter
    from helpers import write_synthetic_rec
    rec = write_synthetic_rec(str(tmp_path / 'train'), count=10)

    def trainer(prefix, max_batches, resume=False):
        seed_everything(0)
        cfg = tiny_config(prefix, lr_epoch_step='100')
        faces = FaceSegIter(rec, 4, cfg, num_workers=0, seed=5)
        return Trainer(cfg, [mx.cpu()], faces, 10, max_batches=max_batches, resume=resume)

    want = trainer(tmp_path / 'straight', 7).run()
    assert trainer(tmp_path / 'split', 4).run()['batch'] == 4
    assert load_resume_state(str(tmp_path / 'split'))[0]['data'] == {'epoch': 1, 'batches': 1}
    got = trainer(tmp_path / 'split', 7, resume=True).run()
    assert (got['weights_sha1'], got['statistics_sha1']) == (want['weights_sha1'],
                                                             want['statistics_sha1'])


def test_resume_may_change_the_steps_it_has_not_reached(tmp_path):
    """Lengthening a run on resuming (--lr-epoch-step 2,3 -> 2,5, stopped at batch 4, before the
    first rate change) gives the run that had the longer schedule from the start; steps that
    would have changed a rate already used are refused with one line."""
    data, label = face_batch(16, seed=3)

    def trainer(prefix, steps, max_batches, resume=False):
        seed_everything(0)
        batches = mx.io.NDArrayIter(data, label, 8, shuffle=False, label_name='softmax_label')
        cfg = tiny_config(prefix, verbose=2, lr_epoch_step=steps)
        return Trainer(cfg, [mx.cpu()], batches, 16, max_batches=max_batches, resume=resume)

    want = trainer(tmp_path / 'straight', '2,5', 8).run()
    assert trainer(tmp_path / 'split', '2,3', 4).run()['batch'] == 4
    with pytest.raises(ValueError) as refused:
        trainer(tmp_path / 'split', '1,5', 8, resume=True)
    assert 'up to batch 4' in str(refused.value) and '\n' not in str(refused.value)
    resumed = trainer(tmp_path / 'split', '2,5', 8, resume=True)
    assert resumed.batch == 4
    got = resumed.run()
    assert (got['weights_sha1'], got['statistics_sha1']) == (want['weights_sha1'],
                                                             want['statistics_sha1'])
    assert load_resume_state(str(tmp_path / 'split'))[0]['schedule']['epoch_steps'] == [2, 5]


def test_fresh_run_on_an_earlier_runs_prefix_refuses_and_force_replaces(synth_dir, tmp_path):
    prefix = tmp_path / 'run' / 'model'
    prefix.parent.mkdir()
    first = run_tiny_training(synth_dir, prefix)
    assert first.returncode == 0, first.stderr
    before = snapshot(prefix.parent)
    assert 'model-0001.params' in before
    refused = run_tiny_training(synth_dir, prefix, '--multiplier', '0.25')
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and 'Traceback' not in refused.stderr
    assert '--resume' in lines[0] and '--force' in lines[0] and 'model-symbol.json' in lines[0]
    assert snapshot(prefix.parent) == before        # the earlier run is untouched
    HeatmapModel(str(prefix), 1)                    # and its checkpoint still loads
    replaced = run_tiny_training(synth_dir, prefix, '--multiplier', '0.25', '--force')
    assert replaced.returncode == 0, replaced.stderr
    assert 'removing the earlier run' in replaced.stdout
    after = snapshot(prefix.parent)
    # Same kinds of files, every one written by the new run: nothing of the old one is left.
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in after), sorted(
        name for name in after if after[name] == before[name])
    HeatmapModel(str(prefix), 1)                    # the new graph with its own weights


def test_prefix_that_names_a_folder_is_refused(synth_dir, tmp_path):
    proc = subprocess.run(train_command(synth_dir, str(tmp_path) + os.sep, '--max-steps', '1'),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and 'names a folder' in proc.stderr
    assert os.listdir(str(tmp_path)) == []
