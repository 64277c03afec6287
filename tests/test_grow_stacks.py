"""Growing a checkpoint to more stacks (symbols.heatmap_net.grow_stacks, train.py
--grow-stacks): the grown network fills every parameter and gives the checkpoint's heatmaps."""
import mxnet as mx
import numpy as np
import pytest

import config
import train
from symbols import heatmap_output, init_params
from symbols.checkpoint import save_checkpoint
from symbols.heatmap_net import build, grow_stacks, validate
from helpers import randomise_params
from test_train_checks import batches, tiny_config
from training import Trainer

DATA_SHAPE = (2, 3, 128, 128)


def network_config(network, stacks, **overrides):
    settings = dict(multiplier=0.125, net_n=2, net_stacks=stacks)
    settings.update(overrides)
    return config.generate_config(network, 'i2d', **settings)


def random_params(symbol, seed):
    """Fresh weights with BatchNorm statistics and biases (the merge convolutions' too) away
    from their initial values, so a copy that lands in the wrong place changes the output."""
    arg, aux = init_params(symbol, DATA_SHAPE)
    randomise_params(arg, aux, seed, biases=True)
    return arg, aux


def heatmaps(symbol, arg, aux, data):
    module = mx.mod.Module(heatmap_output(symbol), data_names=['data'], label_names=None)
    module.bind([('data', data.shape)], for_training=False)
    module.set_params(arg, aux)   # every array present, none extra (allow_missing is off)
    module.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
    return module.get_outputs()[0].asnumpy()


@pytest.mark.parametrize('network, have, grown, overrides', [
    ('hourglass', 1, 2, {}),
    ('hourglass', 1, 3, {}),
    ('hourglass', 2, 3, {}),
    ('satnet', 1, 2, {'net_block': 'cab'}),
    ('hourglass', 1, 2, {'net_dcn': 2}),
], ids=['hourglass-1-to-2', 'hourglass-1-to-3', 'hourglass-2-to-3', 'satnet-1-to-2',
        'deformable-heads-1-to-2'])
def test_grown_network_gives_the_checkpoints_heatmaps(network, have, grown, overrides):
    small = build(network_config(network, have, **overrides))
    large = build(network_config(network, grown, **overrides))
    arg, aux = random_params(small, seed=have)
    grown_arg, grown_aux = grow_stacks(arg, aux, grown)

    # Exactly the deeper network's arrays, each of its shape: nothing left to chance.
    arg_shapes, _, aux_shapes = large.infer_shape(data=DATA_SHAPE)
    needed = {n: s for n, s in zip(large.list_arguments(), arg_shapes)
              if n not in ('data', 'softmax_label')}
    assert {n: v.shape for n, v in grown_arg.items()} == needed
    assert ({n: v.shape for n, v in grown_aux.items()}
            == dict(zip(large.list_auxiliary_states(), aux_shapes)))

    data = np.random.RandomState(7).uniform(0, 255, DATA_SHAPE).astype(np.float32)
    expected = heatmaps(small, arg, aux, data)
    np.testing.assert_allclose(heatmaps(large, grown_arg, grown_aux, data), expected,
                               rtol=1e-5, atol=1e-5)
    # The checkpoint's own arrays are untouched (the copies are copies).
    again_arg, again_aux = grow_stacks(arg, aux, grown)
    np.testing.assert_array_equal(heatmaps(small, arg, aux, data), expected)
    assert set(again_arg) == set(grown_arg) and set(again_aux) == set(grown_aux)


def test_train_starts_the_grown_run_from_the_checkpoint(tmp_path):
    small = build(tiny_config(tmp_path / 'small'))
    arg, aux = random_params(small, seed=3)
    source = str(tmp_path / 'small' / 'model')
    (tmp_path / 'small').mkdir()
    save_checkpoint(source, 0, small, arg, aux)
    args = train.parse_args(['--pretrained', source + ',0', '--grow-stacks'])
    cfg = train.build_config(args)
    assert cfg['grow_stacks'] and cfg['pretrained'] == source
    cfg = config.override(tiny_config(tmp_path / 'run' / 'model', net_stacks=2),
                          pretrained=source, pretrained_epoch=0, grow_stacks=True)
    got, got_aux = Trainer(cfg, [mx.cpu()], batches(), 8).module.get_params()
    for name, value in arg.items():
        target = 'heatmap0' + name[len('heatmap'):] if name.startswith('heatmap_') else name
        np.testing.assert_array_equal(got[target].asnumpy(), value.asnumpy())
        if name.startswith('stack0_'):
            np.testing.assert_array_equal(got['stack1_' + name[len('stack0_'):]].asnumpy(),
                                          value.asnumpy())
    np.testing.assert_array_equal(got['heatmap_weight'].asnumpy(),
                                  arg['heatmap_weight'].asnumpy())
    assert not got['stack0_ll2_weight'].asnumpy().any()
    assert not got['stack0_out2_weight'].asnumpy().any()
    copied = [name for name in aux if name.startswith('stack0_')]
    assert copied
    for name in copied:
        np.testing.assert_array_equal(got_aux['stack1_' + name[len('stack0_'):]].asnumpy(),
                                      aux[name].asnumpy())


def test_growing_a_checkpoint_with_as_many_stacks_is_one_line_naming_it():
    arg, aux = random_params(build(network_config('hourglass', 2)), seed=0)
    for stacks in (1, 2):
        with pytest.raises(ValueError, match=r'^x-0000.params has 2 stacks; growing needs '
                                             r'--net-stacks above that, got %d$' % stacks):
            grow_stacks(arg, aux, stacks, source='x-0000.params')
    del arg['heatmap_weight']
    with pytest.raises(ValueError, match='^x-0000.params: no heatmap_weight array'):
        grow_stacks(arg, aux, 3, source='x-0000.params')


def test_grow_stacks_refusals():
    with pytest.raises(ValueError, match=r'^--grow-stacks needs --pretrained'):
        train.build_config(train.parse_args(['--grow-stacks']))
    with pytest.raises(ValueError, match='drop --grow-stacks$'):
        train.build_config(train.parse_args(['--resume', '--grow-stacks']))
    # A deformable convolution in the merge cannot start as a no-op; in the heads it can.
    for dcn in (1, 3):
        with pytest.raises(ValueError, match='net_dcn %d puts a deformable' % dcn):
            validate(network_config('hourglass', 2, net_dcn=dcn, grow_stacks=True))
    validate(network_config('hourglass', 2, net_dcn=2, grow_stacks=True))
