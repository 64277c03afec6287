"""Gluon view of the same graph: a SymbolBlock over `heatmap_output`."""
import warnings

import mxnet as mx

from .heatmap_net import heatmap_output
from .init import initializer
from .zoo import get_symbol


def get_gluon_net(name_or_config, prefix=None, epoch=0, ctx=None, **overrides):
    """A HybridBlock mapping N x 3 x H x W RGB images (0..255) to heatmaps.

    With `prefix`, weights come from the checkpoint `<prefix>-<epoch:04d>.params` (the Module
    format: `arg:`/`aux:` names), else they are freshly initialised.
    """
    ctx = ctx or mx.cpu()
    out = heatmap_output(get_symbol(name_or_config, **overrides))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # SymbolBlock warns that `data` has no dtype attribute
        net = mx.gluon.SymbolBlock(outputs=out, inputs=mx.sym.var('data'))
    params = net.collect_params()
    if prefix is None:
        params.initialize(initializer(), ctx=ctx)
    else:
        path = '%s-%04d.params' % (prefix, epoch)
        params.load(path, ctx=ctx, ignore_extra=True, allow_missing=False)
    return net
