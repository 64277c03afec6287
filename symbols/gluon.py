"""Gluon view of the same graph: a SymbolBlock over `heatmap_output`."""
import warnings

import mxnet as mx

from . import checkpoint
from .heatmap_net import build, heatmap_output
from .init import init_params
from .zoo import resolve_config


def get_gluon_net(name_or_config, prefix=None, epoch=0, ctx=None, **overrides):
    """A HybridBlock mapping N x 3 x H x W RGB images (0..255) to heatmaps.

    With `prefix`, weights come from the checkpoint `<prefix>-<epoch:04d>.params` (the Module
    format: `arg:`/`aux:` names), checked against the graph's shapes, else they are freshly
    initialised.
    """
    ctx = ctx or mx.cpu()
    cfg = resolve_config(name_or_config, **overrides)
    out = heatmap_output(build(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SymbolBlock warns that `data` has no dtype attribute
        net = mx.gluon.SymbolBlock(outputs=out, inputs=mx.sym.var('data'))
    params = net.collect_params()
    size = cfg['input_img_size']
    if prefix is not None:
        path = checkpoint.params_path(prefix, epoch)
        args, aux = checkpoint.checked_params(out, *checkpoint.load_params(path), path, size)
    else:
        args, aux = init_params(out, (1, 3, size, size))
    params.initialize(ctx=ctx)
    for name, value in list(args.items()) + list(aux.items()):
        params[name].set_data(value)
    return net
