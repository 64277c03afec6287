"""train.py on bad input: one line naming the flag or file, and an earlier run at --prefix
survives every run that fails before writing its first file, --force or not."""
import os

import mxnet as mx
import numpy as np
import pytest

import config
import train
from conftest import ROOT
from helpers import save_tiny_checkpoint, snapshot, train_command
from symbols import get_symbol
from symbols.checkpoint import load_params, save_params
from training import Trainer, TrainingDiverged
from training.resume import load_resume_state
from training.run import data_paths

SHIPPED = os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w')


def tiny_config(prefix, **overrides):
    settings = dict(multiplier=0.125, net_n=1, net_stacks=1, per_batch_size=4, prefix=str(prefix),
                    frequent=1, verbose=1000, lr=1e-3, lr_epoch_step='100')
    settings.update(overrides)
    return config.generate_config('hourglass', 'synth2d', **settings)


def batches(count=8, label_value=0.0):
    data = np.random.RandomState(0).uniform(0, 255, (count, 3, 128, 128)).astype(np.float32)
    label = np.full((count, 68, 64, 64), label_value, dtype=np.float32)
    return mx.io.NDArrayIter(data, label, 4, label_name='softmax_label')


def earlier_run(folder):
    """Stand-ins for the files of an earlier run at `folder`/model; returns the prefix."""
    folder.mkdir(exist_ok=True)
    for name in ('model-symbol.json', 'model-0003.params', 'model-log.jsonl',
                 'model-curves.png'):
        (folder / name).write_text('earlier run: %s\n' % name)
    return folder / 'model'


def run_cli(capsys, synth_dir, prefix, *extra):
    """train.py's main in this process (no MXNet start-up per case): (exit code, stderr lines)."""
    code = train.main(train_command(synth_dir, prefix, '--max-steps', '2', '--lr-epoch-step',
                                    '2', *extra)[2:])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize('extra, phrase', [
    (['--net-block', 'bogus'], "unknown block 'bogus'"),
    (['--net-n', '7'], 'net_n must be 1..6 for 64 x 64 heatmaps'),
    (['--lr-epoch-step', 'abc'], "comma-separated integers, got 'abc'"),
    (['--pretrained', 'TMP/none,0'], 'none-0000.params: no such checkpoint file'),
    (['--pretrained', SHIPPED], 'model-0000.params: --pretrained fills only'),
    (['--teacher', 'TMP/none,0'], 'none-symbol.json'),
    (['--val-targets', 'val,nonexist'], 'nonexist.rec: not found for --val-targets')],
    ids=['net-block', 'net-n', 'lr-epoch-step', 'pretrained-missing', 'pretrained-other-net',
         'teacher-missing', 'val-targets-missing'])
def test_force_removes_nothing_when_the_new_run_fails_before_writing(synth_dir, tmp_path,
                                                                     capsys, extra, phrase):
    """Every check that can fail (options, network, --pretrained, --teacher, data) runs
    before --force removes the earlier run."""
    prefix = earlier_run(tmp_path / 'run')
    before = snapshot(prefix.parent)
    extra = [value.replace('TMP', str(tmp_path)) for value in extra]
    code, lines = run_cli(capsys, synth_dir, prefix, '--force', *extra)
    assert code == 2 and len(lines) == 1 and phrase in lines[0], lines
    assert snapshot(prefix.parent) == before


def test_force_removes_nothing_when_the_first_batch_diverges(tmp_path):
    prefix = earlier_run(tmp_path / 'run')
    before = snapshot(prefix.parent)
    trainer = Trainer(tiny_config(prefix), [mx.cpu()], batches(label_value=np.nan), 8,
                      force=True)
    with pytest.raises(TrainingDiverged, match='at batch 1'):
        trainer.run()
    assert snapshot(prefix.parent) == before


def test_force_replaces_the_earlier_run_once_the_new_one_writes(tmp_path):
    prefix = earlier_run(tmp_path / 'run')
    Trainer(tiny_config(prefix), [mx.cpu()], batches(), 8, max_batches=1, force=True).run()
    written = snapshot(prefix.parent)
    assert 'model-0003.params' not in written and 'model-0000.params' in written
    assert not [name for name, data in written.items() if data.startswith(b'earlier run')]


def test_net_n_limit_is_the_depth_the_heatmap_side_allows():
    cfg = train.build_config(train.parse_args(['--net-n', '6', '--multiplier', '0.125']))
    # Six halvings of 64 x 64 heatmaps leave one pixel: the graph still builds.
    get_symbol(cfg).infer_shape(data=(1, 3, 128, 128), softmax_label=(1, 68, 64, 64))
    for network in ('hourglass', 'satnet'):
        with pytest.raises(ValueError, match=r'^net_n must be 1..6 for 64 x 64 heatmaps'
                                             r' \(each level halves them\), got 7$'):
            train.build_config(train.parse_args(['--network', network, '--net-n', '7']))


def test_pretrained_of_another_architecture_is_refused(tmp_path):
    cfg = tiny_config(tmp_path / 'model', pretrained=SHIPPED, pretrained_epoch=0)
    with pytest.raises(ValueError) as refused:
        Trainer(cfg, [mx.cpu()], batches(), 8)
    message = str(refused.value)
    assert message.startswith(os.path.join(SHIPPED, 'model-0000.params') + ': --pretrained '
                              'fills only ') and 'fewer than half' in message
    assert '\n' not in message and not os.listdir(tmp_path)


@pytest.mark.parametrize('spec', ['FOLDER', 'FOLDER,0'])
def test_pretrained_model_folder_with_another_final_layer(tmp_path, spec):
    """A model folder works as --pretrained, as it does as --teacher; a checkpoint that lacks
    only the final layer (another head) still fills everything else."""
    folder = tmp_path / 'pretrained'
    folder.mkdir()
    prefix = save_tiny_checkpoint(str(folder / 'model'))
    path = prefix + '-0000.params'
    arg, aux = load_params(path)
    del arg['heatmap_weight'], arg['heatmap_bias']
    save_params(path, arg, aux)
    args = train.parse_args(['--pretrained', spec.replace('FOLDER', str(folder))])
    cfg = train.build_config(args)
    assert (cfg['pretrained'], cfg['pretrained_epoch']) == (str(folder), 0)
    cfg = config.override(tiny_config(tmp_path / 'model', multiplier=0.25, net_n=2,
                                      net_stacks=2),
                          pretrained=cfg['pretrained'], pretrained_epoch=0)
    trainer = Trainer(cfg, [mx.cpu()], batches(), 8)
    got, _ = trainer.module.get_params()
    assert np.array_equal(got['conv0_weight'].asnumpy(), arg['conv0_weight'].asnumpy())


def test_corrupt_optimizer_states_on_resume_is_one_line_naming_the_file(tmp_path):
    prefix = tmp_path / 'model'
    Trainer(tiny_config(prefix, verbose=1), [mx.cpu()], batches(), 8, max_batches=1).run()
    states = load_resume_state(str(prefix))[3]
    for damaged in (b'', open(states, 'rb').read()[:50], b'not a pickle'):
        with open(states, 'wb') as f:
            f.write(damaged)
        with pytest.raises(ValueError) as refused:
            Trainer(tiny_config(prefix, verbose=1), [mx.cpu()], batches(), 8, resume=True)
        message = str(refused.value)
        assert message.startswith(states + ': unreadable optimizer states') and '\n' not in message


def test_named_validation_targets_must_exist(synth_dir, caplog):
    """Targets named with --val-targets must be there; the preset's defaults (the original's
    ibug, cofw_testset) are skipped with a warning when a data folder lacks them."""
    cfg = config.generate_config('hourglass', 'i2d', data_dir=synth_dir,
                                 val_targets=['val', 'nonexist'])
    with pytest.raises(ValueError, match='^%s: not found for --val-targets nonexist ' % (
            os.path.join(synth_dir, 'nonexist.rec'))):
        data_paths(cfg, require_val_targets=True)
    assert list(data_paths(cfg)[1]) == ['val']
    assert 'nonexist.rec: missing, validation on nonexist skipped' in caplog.text
    for empty in (',', ' , '):
        with pytest.raises(ValueError, match='names no validation target'):
            train.build_config(train.parse_args(['--val-targets', empty]))


def test_resume_refuses_flags_it_would_ignore():
    for extra, dropped in ((['--pretrained', 'x,0'], 'drop --pretrained'),
                           (['--force'], 'drop --force'),
                           (['--pretrained', 'x,0', '--force'], 'drop --pretrained and --force')):
        with pytest.raises(ValueError, match=dropped):
            train.build_config(train.parse_args(['--resume'] + extra))


def test_a_run_that_fails_to_start_leaves_no_empty_prefix_folder(synth_dir, tmp_path, capsys):
    # --resume of a run that was never made: the error, and no new/ folder left behind.
    argv = train_command(synth_dir, tmp_path / 'new' / 'deeper' / 'model', '--resume')[2:]
    assert train.main(argv) == 2
    assert 'error:' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
