"""Checkpoint weight averaging (training/averaging.py, scripts/average_checkpoints.py) and the
--ckpt 2 runs it averages."""
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
from symbols.checkpoint import list_epochs, load_params, params_path, save_checkpoint
from test_train import face_batch, tiny_config
from training import Trainer
from training.averaging import average_params, parse_epochs, recalibrate_batchnorm
from training.trainer import seed_everything


def tiny_run(prefix, ckpt, batches=6):
    """A tiny run without validation targets, validating every 2 batches."""
    seed_everything(0)
    data, label = face_batch(8, seed=1)
    iterator = mx.io.NDArrayIter(data, label, 4, shuffle=False, label_name='softmax_label')
    cfg = tiny_config(prefix, verbose=2, ckpt=ckpt, lr=1e-2)
    Trainer(cfg, [mx.cpu()], iterator, 8, max_batches=batches).run()
    return str(prefix)


@pytest.fixture(scope='module')
def every_validation_run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp('swa') / 'model', ckpt=2)


def test_ckpt_2_saves_at_every_validation_and_ckpt_1_only_on_improvement_or_end(
        every_validation_run, tmp_path):
    assert list_epochs(every_validation_run) == [1, 2, 3]
    # Without validation targets nothing improves: ckpt 1 saves only the final weights.
    assert list_epochs(tiny_run(tmp_path / 'model', ckpt=1)) == [3]


def test_checkpoints_hold_the_batchnorm_statistics_of_their_last_batch(tmp_path):
    """MXNet writes BatchNorm's moving statistics in the backward pass behind the engine's
    back; before Trainer waited for it, one run in three of these saved the previous batch's
    statistics, so identical runs wrote different checkpoints."""
    saved = []
    for run in range(4):
        arg, aux = load_params(params_path(tiny_run(tmp_path / str(run) / 'model', ckpt=1), 3))
        saved.append([aux[name].asnumpy() for name in sorted(aux)])
    for other in saved[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(saved[0], other))


def test_average_params_is_the_element_wise_mean(every_validation_run):
    paths = [params_path(every_validation_run, epoch) for epoch in (1, 2, 3)]
    arg, aux = average_params(paths)
    loaded = [load_params(path) for path in paths]
    for averaged, part in ((arg, 0), (aux, 1)):
        assert set(averaged) == set(loaded[0][part])
        for name, value in averaged.items():
            want = np.mean([params[part][name].asnumpy() for params in loaded], axis=0)
            np.testing.assert_allclose(value.asnumpy(), want, rtol=1e-6, atol=1e-7)
    # The checkpoints differ (the run trained between them), so the mean is a new point.
    name = sorted(arg)[0]
    assert not np.allclose(arg[name].asnumpy(), loaded[2][0][name].asnumpy())


def test_average_params_refuses_another_network_in_one_line(every_validation_run, tmp_path):
    import symbols
    other = symbols.get_symbol('hg2d3-cab', multiplier=0.25, net_n=2)
    save_checkpoint(str(tmp_path / 'other'), 0, other, *symbols.init_params(other, (1, 3, 128, 128)))
    with pytest.raises(ValueError) as refused:
        average_params([params_path(every_validation_run, 1), params_path(tmp_path / 'other', 0)])
    message = str(refused.value)
    assert message.startswith(params_path(tmp_path / 'other', 0)) and '\n' not in message


@pytest.mark.parametrize('text, want', [('2-5', [2, 3, 4, 5]), ('7,3,5', [3, 5, 7])])
def test_parse_epochs(text, want):
    assert parse_epochs(text) == want


@pytest.mark.parametrize('text', ['4', '3,3', 'a-b', '5-4'])
def test_parse_epochs_refuses_fewer_than_two(text):
    with pytest.raises(ValueError):
        parse_epochs(text)


def test_batchnorm_statistics_are_the_mean_of_the_batch_statistics(every_validation_run):
    """After a pass over two batches the first BatchNorm's moving mean and variance are the
    means of its input's per-batch mean and (biased) variance; the weights are untouched."""
    from symbols.checkpoint import load_symbol
    from symbols.heatmap_net import heatmap_output
    symbol = load_symbol('%s-symbol.json' % every_validation_run)
    arg, aux = load_params(params_path(every_validation_run, 3))
    before = {name: value.asnumpy().copy() for name, value in arg.items()}
    batches = [face_batch(4, seed=5)[0], face_batch(4, seed=6)[0] * 0.5]
    updated = recalibrate_batchnorm(symbol, arg, aux, batches)
    stem = heatmap_output(symbol).get_internals()['conv0_output']   # bn0's input
    executor = stem.simple_bind(mx.cpu(), data=batches[0].shape, grad_req='null')
    for name, array in executor.arg_dict.items():
        if name != 'data':
            arg[name].copyto(array)
    outputs = [executor.forward(data=mx.nd.array(b))[0].asnumpy() for b in batches]
    for stat, key in ((np.mean, 'bn0_moving_mean'), (np.var, 'bn0_moving_var')):
        want = np.mean([stat(out, axis=(0, 2, 3)) for out in outputs], axis=0)
        np.testing.assert_allclose(updated[key].asnumpy(), want, rtol=1e-3, atol=1e-6)
        assert not np.allclose(aux[key].asnumpy(), want, rtol=1e-3, atol=1e-6)
    assert all(np.array_equal(before[name], arg[name].asnumpy()) for name in arg)


def run_script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'average_checkpoints.py')]
                          + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_script_writes_the_average_and_updates_batchnorm_on_a_rec(every_validation_run,
                                                                   synth_dir, tmp_path):
    plain = run_script('--prefix', every_validation_run, '--epochs', '1-3',
                       '--output', tmp_path / 'plain')
    assert plain.returncode == 0, plain.stderr
    updated = run_script('--prefix', every_validation_run, '--epochs', '1-3',
                         '--output', tmp_path / 'bn', '--bn-rec',
                         os.path.join(synth_dir, 'train.rec'), '--aug-shift', '0.03')
    assert updated.returncode == 0, updated.stderr
    arg, aux = average_params([params_path(every_validation_run, e) for e in (1, 2, 3)])
    plain_arg, plain_aux = load_params(params_path(tmp_path / 'plain', 0))
    bn_arg, bn_aux = load_params(params_path(tmp_path / 'bn', 0))
    for name in arg:
        np.testing.assert_array_equal(plain_arg[name].asnumpy(), arg[name].asnumpy())
        np.testing.assert_array_equal(bn_arg[name].asnumpy(), arg[name].asnumpy())
    for name in aux:
        np.testing.assert_array_equal(plain_aux[name].asnumpy(), aux[name].asnumpy())
    assert not np.allclose(bn_aux['bn0_moving_mean'].asnumpy(), aux['bn0_moving_mean'].asnumpy())
    assert os.path.isfile(tmp_path / 'bn-symbol.json')


def test_script_averages_several_runs_together(every_validation_run, tmp_path):
    # A second run of the same graph: the first run's checkpoints 2 and 3 as its 1 and 2.
    other = str(tmp_path / 'other' / 'model')
    os.makedirs(os.path.dirname(other))
    shutil.copy(every_validation_run + '-symbol.json', other + '-symbol.json')
    for epoch in (1, 2):
        shutil.copy(params_path(every_validation_run, epoch + 1), params_path(other, epoch))
    soup = run_script('--prefix', every_validation_run, other, '--epochs', '1-2',
                      '--output', tmp_path / 'soup')
    assert soup.returncode == 0 and 'averaged 4 checkpoints' in soup.stdout, soup.stderr
    arg, aux = average_params([params_path(every_validation_run, e) for e in (1, 2, 2, 3)])
    soup_arg, soup_aux = load_params(params_path(tmp_path / 'soup', 0))
    for mine, theirs in ((soup_arg, arg), (soup_aux, aux)):
        for name in theirs:
            np.testing.assert_array_equal(mine[name].asnumpy(), theirs[name].asnumpy())
    refused = run_script('--prefix', every_validation_run, other, '--epochs', '1-2',
                         '--output', other)
    assert refused.returncode == 2 and "run's own prefix" in refused.stderr


@pytest.mark.parametrize('extra, expected', [
    (['--epochs', '1-9'], 'no such checkpoint file'),
    (['--epochs', '1'], 'at least two'),
    (['--epochs', '1-3', '--bn-rec', 'missing.rec'], 'missing.rec: no such .rec file')])
def test_script_bad_input_is_one_line(every_validation_run, tmp_path, extra, expected):
    result = run_script('--prefix', every_validation_run, '--output', tmp_path / 'out', *extra)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / 'out-0000.params')


def test_script_refuses_to_overwrite_the_runs_own_checkpoints(every_validation_run):
    before = open(params_path(every_validation_run, 1), 'rb').read()
    result = run_script('--prefix', every_validation_run, '--epochs', '1-3',
                        '--output', every_validation_run, '--output-epoch', '1')
    assert result.returncode == 2 and "run's own prefix" in result.stderr
    assert open(params_path(every_validation_run, 1), 'rb').read() == before
