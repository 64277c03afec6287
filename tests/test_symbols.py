"""Builder options, checkpoints and the Gluon view of the heatmap networks.

`test_every_option_trains_one_step` runs a pairwise-covering set of the builder options (every
value of every option meets every value of every other option in some case; ~20 cases).
FULL_OPTION_MATRIX=1 (`make test-all`) runs the full product instead (384 cases, ~8 min)."""
import itertools
import json
import os

import mxnet as mx
import numpy as np
import pytest

import config
import symbols

OPTION_VALUES = [
    ('block', ['resnet', 'inception', 'hpm', 'cab']),
    ('sat', [0, 1, 2]),
    ('dcn', [0, 1, 2, 3]),
    ('coherent', [False, True]),
    ('size', [(128, 64), (256, 64)]),
    ('loss', ['l2', 'ce']),
]
FULL_OPTIONS = list(itertools.product(*(values for _, values in OPTION_VALUES)))


def value_pairs(case):
    """The (option index, value, option index, value) pairs that one case exercises."""
    return {(i, case[i], j, case[j]) for i, j in itertools.combinations(range(len(case)), 2)}


def pairwise_cases(candidates):
    """Greedy all-pairs selection, deterministic: repeatedly take the first candidate (in the
    given order) that covers the most value pairs not covered yet, until all are."""
    uncovered = set().union(*(value_pairs(case) for case in candidates))
    cases = []
    while uncovered:
        best = max(candidates, key=lambda case: len(value_pairs(case) & uncovered))
        cases.append(best)
        uncovered -= value_pairs(best)
    return cases


def case_id(case):
    block, sat, dcn, coherent, size, loss = case
    return '%s-sat%d-dcn%d-coherent%d-%d-%s' % (block, sat, dcn, coherent, size[0], loss)


PAIRWISE_OPTIONS = pairwise_cases(FULL_OPTIONS)
FULL_OPTION_MATRIX = os.environ.get('FULL_OPTION_MATRIX', '') not in ('', '0')
OPTIONS = FULL_OPTIONS if FULL_OPTION_MATRIX else PAIRWISE_OPTIONS


def tiny_config(**overrides):
    base = dict(multiplier=0.125, net_n=3, per_batch_size=2)
    base.update(overrides)
    return config.generate_config('hourglass', 'i2d', **base)


def bind_module(sym, batch, input_size=128, for_training=True):
    labels = [('softmax_label', (batch, 68, 64, 64))] if for_training else None
    mod = mx.mod.Module(sym, data_names=['data'],
                        label_names=['softmax_label'] if for_training else None,
                        context=mx.cpu())
    mod.bind(data_shapes=[('data', (batch, 3, input_size, input_size))],
             label_shapes=labels, for_training=for_training)
    return mod


def random_batch(batch, input_size=128, seed=0):
    rng = np.random.RandomState(seed)
    return mx.io.DataBatch(
        [mx.nd.array(rng.uniform(0, 255, (batch, 3, input_size, input_size)))],
        [mx.nd.array(rng.uniform(0, 1, (batch, 68, 64, 64)))])


@pytest.mark.parametrize('block,sat,dcn,coherent,size,loss', OPTIONS,
                         ids=[case_id(case) for case in OPTIONS])
def test_every_option_trains_one_step(block, sat, dcn, coherent, size, loss):
    cfg = tiny_config(net_block=block, net_sat=sat, net_dcn=dcn, net_coherent=coherent,
                      input_img_size=size[0], output_label_size=size[1], net_loss=loss)
    sym = symbols.get_symbol(cfg)
    num_losses = cfg['net_stacks'] + (1 if coherent else 0)
    assert len(sym.list_outputs()) == num_losses + 1
    _, out_shapes, _ = symbols.heatmap_output(sym).infer_shape(data=(2, 3, size[0], size[0]))
    assert out_shapes == [(2, 68, 64, 64)]
    mod = bind_module(sym, 2, size[0])
    mod.init_params(symbols.initializer())
    mod.forward(random_batch(2, size[0]), is_train=True)
    mod.backward()
    outputs = [o.asnumpy() for o in mod.get_outputs()]
    assert all(np.isfinite(o).all() for o in outputs)
    grads = [g[0].asnumpy() for g in mod._exec_group.grad_arrays]
    assert all(np.isfinite(g).all() for g in grads)
    assert any(np.abs(g).sum() > 0 for g in grads)


def test_pairwise_options_cover_every_pair_of_values():
    # Every pair of values of two different options, enumerated from the option lists alone.
    wanted = {(i, a, j, b)
              for (i, (_, first)), (j, (_, second)) in itertools.combinations(
                  enumerate(OPTION_VALUES), 2)
              for a in first for b in second}
    assert len(wanted) == 118
    covered = set().union(*(value_pairs(case) for case in PAIRWISE_OPTIONS))
    assert covered == wanted
    # Real, distinct cases of the full product, and far fewer of them: at least 4 x 4 (block x
    # dcn) are needed; the greedy choice is deterministic.
    assert len(set(PAIRWISE_OPTIONS)) == len(PAIRWISE_OPTIONS)
    assert set(PAIRWISE_OPTIONS) <= set(FULL_OPTIONS) and len(FULL_OPTIONS) == 384
    assert 16 <= len(PAIRWISE_OPTIONS) <= 25
    assert pairwise_cases(FULL_OPTIONS) == PAIRWISE_OPTIONS
    assert OPTIONS == (FULL_OPTIONS if FULL_OPTION_MATRIX else PAIRWISE_OPTIONS)


def test_ce_loss_is_the_spatial_softmax_cross_entropy():
    """The fused log_softmax loss against its definition in numpy: value and gradient."""
    from symbols.heatmap_net import ce_loss
    rng = np.random.RandomState(0)
    pred = rng.normal(0, 3, (2, 3, 8, 8))
    target = rng.uniform(0, 1, (2, 3, 8, 8))
    flat = pred.reshape(2, 3, -1)
    shifted = flat - flat.max(axis=2, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=2, keepdims=True)
    expected = -(np.log(prob) * target.reshape(2, 3, -1)).mean()
    # d/dpred of -mean(t * log softmax(pred)) = (prob * sum(t) - t) / size, per map
    t = target.reshape(2, 3, -1)
    expected_grad = ((prob * t.sum(axis=2, keepdims=True) - t) / t.size).reshape(pred.shape)
    loss = mx.sym.MakeLoss(ce_loss(mx.sym.Variable('pred'), mx.sym.Variable('target')))
    grad = mx.nd.zeros(pred.shape)
    executor = loss.bind(mx.cpu(), {'pred': mx.nd.array(pred), 'target': mx.nd.array(target)},
                         args_grad={'pred': grad}, grad_req={'pred': 'write', 'target': 'null'})
    executor.forward(is_train=True)
    executor.backward()
    assert np.isclose(executor.outputs[0].asnumpy()[0], expected, rtol=1e-5)
    assert np.allclose(grad.asnumpy(), expected_grad, rtol=1e-4, atol=1e-8)


def test_coherent_needs_even_batch():
    with pytest.raises(ValueError, match='per_batch_size must be even'):
        symbols.get_symbol(tiny_config(net_coherent=True, per_batch_size=3))


def test_binarize_is_refused_with_reason():
    with pytest.raises(ValueError, match='QConvolution'):
        symbols.get_symbol(tiny_config(net_binarize=True))


@pytest.mark.parametrize('call,listed', [
    (lambda: symbols.get_symbol('hg9-nothing'), 'hg2d3-cab'),
    (lambda: symbols.get_symbol(tiny_config(net_block='dense')), 'inception'),
    (lambda: symbols.get_symbol(tiny_config(input_img_size=96)), '256/64'),
    (lambda: symbols.get_symbol(tiny_config(net_sat=5)), '0, 1, 2'),
    (lambda: symbols.get_symbol(tiny_config(net_loss='huber')), 'l2, ce'),
    (lambda: config.generate_config('unet', 'i2d'), 'hourglass, satnet'),
    (lambda: config.generate_config('hourglass', 'i2d', net_blok='cab'), 'net_blok'),
])
def test_unknown_names_list_the_valid_ones(call, listed):
    with pytest.raises(ValueError, match=listed):
        call()


def _structure(sym):
    """Operators, attributes and parameter names, without auto-generated node names."""
    nodes = json.loads(sym.tojson())['nodes']
    return [(n['op'], n.get('attrs'), n['name'] if n['op'] == 'null' else None) for n in nodes]


def test_3d_names_are_the_same_graphs():
    a = symbols.heatmap_output(symbols.get_symbol('hg2d3-cab'))
    b = symbols.heatmap_output(symbols.get_symbol('hg2d3-cab-3d'))
    assert _structure(a) == _structure(b)
    assert symbols.get_config('hg2d3-cab-3d')['landmark_type'] == '3d'


def test_builders_leave_config_untouched():
    cfg = tiny_config(net_block='hpm')
    before = dict(cfg)
    symbols.get_symbol(cfg, num_classes=68, net_sat=1)
    assert cfg == before


def test_upsampling_and_offsets_initialised_as_original():
    cfg = tiny_config(net_sat=1, net_dcn=3)
    mod = bind_module(symbols.get_symbol(cfg), 2)
    mod.init_params(symbols.initializer())
    args, aux = mod.get_params()
    ups = [k for k in args if 'upsampling' in k]
    offsets = [k for k in args if '_offset_' in k]
    assert ups and offsets
    # MXNet's bilinear filler (the original's `_init_bilinear`) for a 2x2 kernel of stride 2.
    kernel = args[ups[0]].asnumpy()
    np.testing.assert_array_equal(kernel, np.broadcast_to([[1, 0], [0, 0]], kernel.shape))
    assert all(np.all(args[k].asnumpy() == 0) for k in offsets)
    conv = args['conv0_weight'].asnumpy()
    fan_in = np.prod(conv.shape[1:])
    assert abs(conv.std() - np.sqrt(2.0 / fan_in)) < 0.3 * np.sqrt(2.0 / fan_in)
    assert all(np.all(v.asnumpy() == 1) for k, v in aux.items() if k.endswith('moving_var'))


def test_checkpoint_round_trip_and_gluon_view(tmp_path):
    cfg = tiny_config(net_block='cab', net_sat=1)
    sym = symbols.get_symbol(cfg)
    mod = bind_module(sym, 2)
    mod.init_params(symbols.initializer())
    # Train one step so BatchNorm moving statistics differ from their initial values.
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.01})
    mod.forward(random_batch(2), is_train=True)
    mod.backward()
    mod.update()
    args, aux = mod.get_params()
    prefix = str(tmp_path / 'model')
    mx.model.save_checkpoint(prefix, 3, sym, args, aux)

    images = random_batch(2, seed=1).data[0]
    infer = bind_module(symbols.heatmap_output(sym), 2, for_training=False)
    infer.set_params(args, aux)
    infer.forward(mx.io.DataBatch([images]), is_train=False)
    expected = infer.get_outputs()[0].asnumpy()

    loaded_sym, loaded_args, loaded_aux = mx.model.load_checkpoint(prefix, 3)
    reloaded = bind_module(symbols.heatmap_output(loaded_sym), 2, for_training=False)
    reloaded.set_params(loaded_args, loaded_aux)
    reloaded.forward(mx.io.DataBatch([images]), is_train=False)
    np.testing.assert_array_equal(reloaded.get_outputs()[0].asnumpy(), expected)

    net = symbols.get_gluon_net(cfg, prefix=prefix, epoch=3)
    assert isinstance(net, mx.gluon.HybridBlock)
    np.testing.assert_allclose(net(images).asnumpy(), expected, rtol=1e-5, atol=1e-4)
    net.hybridize()
    np.testing.assert_allclose(net(images).asnumpy(), expected, rtol=1e-5, atol=1e-4)


def test_gluon_net_without_checkpoint_is_initialised():
    net = symbols.get_gluon_net('hg2d3-cab', multiplier=0.125)
    out = net(mx.nd.zeros((1, 3, 128, 128)))
    assert out.shape == (1, 68, 64, 64)
    assert np.isfinite(out.asnumpy()).all()


def test_model_stats_counts_parameters_and_convolution_flops():
    from symbols.summary import model_stats
    stats = model_stats('hg2d3-cab')
    assert stats['params'] + stats['aux'] == 9286792 + 20832
    assert round(stats['mb'], 1) == 37.2
    # conv0 alone: 64 filters x 3 x 3 x 3 taps over 128 x 128 outputs, 2 FLOPs per tap.
    conv0 = 2 * 128 * 128 * 64 * 27 / 1e9
    assert stats['gflops'] > conv0
    wider = model_stats('hg2d3-cab', multiplier=2.0)
    assert 3.0 < wider['gflops'] / stats['gflops'] < 4.1
