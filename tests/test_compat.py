"""The zoo graphs are the original's: same parameter names/shapes and the same forward pass."""
import json
import os
import zlib

import mxnet as mx
import numpy as np
import pytest

import symbols
from conftest import FIXTURES

with open(os.path.join(FIXTURES, 'compat', 'param_shapes.json')) as f:
    PARAM_SHAPES = json.load(f)
with open(os.path.join(FIXTURES, 'compat', 'forward_ref.json')) as f:
    FORWARD_REF = json.load(f)

# Parameters + auxiliary states of the published models (compat/README.md).
PUBLISHED_COUNTS = {'hg2d4-resnet': 6586440 + 31488, 'hg2d3-hpm': 9659464 + 22272,
                    'hg2d4-cab': 11624584 + 25824, 'sat2d3-cab': 10094728 + 24288,
                    'hg2d3-cab': 9286792 + 20832, 'hg2d3-inception': 7636392 + 35424,
                    'hg2d4-hpm': 12097864 + 27648, 'sat2d3-hpm': 10132040 + 24448}
PUBLISHED_MB = {'hg2d4-resnet': 26.5, 'hg2d3-hpm': 38.7, 'hg2d4-cab': 46.6,
                'sat2d3-cab': 40.5, 'hg2d3-cab': 37.2}


def shape_map(name):
    out = symbols.heatmap_output(symbols.get_symbol(name))
    args, _, aux = out.infer_shape(data=(1, 3, 128, 128))
    shapes = {n: list(s) for n, s in zip(out.list_arguments(), args) if n != 'data'}
    shapes.update({n: list(s) for n, s in zip(out.list_auxiliary_states(), aux)})
    return out, shapes


def reference_weight(name, shape):
    rng = np.random.RandomState(zlib.crc32(name.encode()) & 0x7fffffff)
    if name.endswith(('_gamma', 'moving_var')):
        value = 1 + 0.1 * np.abs(rng.standard_normal(shape))
    elif name.endswith(('_beta', 'moving_mean', '_bias')):
        value = 0.05 * rng.standard_normal(shape)
    else:
        value = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))
    return value.astype(np.float32)


@pytest.mark.parametrize('name', symbols.list_models())
def test_param_shapes_match_released_checkpoints(name):
    _, shapes = shape_map(name)
    assert shapes == PARAM_SHAPES[name.replace('-3d', '')]
    base = name.replace('-3d', '')
    assert sum(int(np.prod(s)) for s in shapes.values()) == PUBLISHED_COUNTS[base]
    if base in PUBLISHED_MB:
        mb = PUBLISHED_COUNTS[base] * 4 / 1e6
        assert round(mb, 1) == PUBLISHED_MB[base]


@pytest.mark.parametrize('name', sorted(FORWARD_REF))
def test_forward_pass_matches_reference(name):
    out, shapes = shape_map(name)
    ref = FORWARD_REF[name]
    data = np.random.RandomState(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    aux_names = set(out.list_auxiliary_states())
    args = {'data': mx.nd.array(data)}
    aux = {}
    for key, shape in shapes.items():
        (aux if key in aux_names else args)[key] = mx.nd.array(reference_weight(key, shape))
    exe = out.bind(mx.cpu(), args=args, aux_states=aux, grad_req='null')
    heat = exe.forward(is_train=False)[0].asnumpy()[0].reshape(len(ref['sum']), -1)
    samples = heat[:, ref['sample_idx']]
    scale = np.abs(np.array(ref['samples'])).max()
    np.testing.assert_allclose(samples, ref['samples'], rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(heat.sum(1), ref['sum'], rtol=1e-3,
                               atol=1e-3 * np.abs(ref['sum']).max())
    np.testing.assert_allclose((heat.astype(np.float64) ** 2).sum(1), ref['sumsq'], rtol=1e-3)
    agree = np.mean(heat.argmax(1) == np.array(ref['argmax']))
    assert agree == 1.0
