"""Size and cost of a network: parameter counts, float32 megabytes and convolution GFLOPs."""
import json

import numpy as np

from .heatmap_net import build, heatmap_output
from .zoo import resolve_config

_CONV_OPS = ('Convolution', '_contrib_DeformableConvolution', 'Deconvolution')


def _conv_flops(node, in_shape, out_shape):
    """Multiply-adds x 2 of one convolution node (bias and offset sampling not counted)."""
    attrs = node['attrs']
    kernel = int(np.prod(json.loads(attrs['kernel'].replace('(', '[').replace(')', ']'))))
    group = int(attrs.get('num_group', 1))
    if node['op'] == 'Deconvolution':
        per_input = out_shape[1] // group * kernel
        return 2 * int(np.prod(in_shape)) * per_input
    return 2 * int(np.prod(out_shape)) * (in_shape[1] // group) * kernel


def model_stats(name_or_config, input_size=None, **overrides):
    """{'params', 'aux', 'mb', 'gflops'} of the inference graph for one input image."""
    cfg = resolve_config(name_or_config, **overrides)
    size = input_size or cfg['input_img_size']
    out = heatmap_output(build(cfg))
    arg_shapes, _, aux_shapes = out.infer_shape(data=(1, 3, size, size))
    params = sum(int(np.prod(s)) for n, s in zip(out.list_arguments(), arg_shapes)
                 if n != 'data')
    aux = sum(int(np.prod(s)) for s in aux_shapes)

    internals = out.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=(1, 3, size, size))
    shape_of = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(out.tojson())['nodes']
    flops = 0
    for node in nodes:
        if node['op'] in _CONV_OPS:
            source = nodes[node['inputs'][0][0]]
            in_name = source['name'] if source['op'] == 'null' else source['name'] + '_output'
            flops += _conv_flops(node, shape_of[in_name], shape_of[node['name'] + '_output'])
    return {'params': params, 'aux': aux, 'mb': (params + aux) * 4 / 1e6, 'gflops': flops / 1e9}
