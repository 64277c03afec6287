"""Weight averaging of checkpoints from one run (SWA: Izmailov et al., "Averaging Weights Leads
to Wider Optima and Better Generalization", UAI 2018), and the BatchNorm statistics it needs.

The mean of weights saved along a run at a constant learning rate tends to sit nearer the
centre of the low-loss region than any single checkpoint. BatchNorm's moving statistics are
not weights: those of the averaged network differ from the average of the saved ones, so they
can be measured again on training crops ("precise BN"): each layer's mean and variance become
the average of its training-mode batch statistics over one pass.
"""
import json

import mxnet as mx
import numpy as np

from symbols import checkpoint
from symbols.heatmap_net import heatmap_output

from .trainer import wait_for_batchnorm_statistics


def parse_epochs(text):
    """'8-24' -> [8, ..., 24]; '8,12,16' -> [8, 12, 16]; at least two distinct epochs."""
    try:
        if '-' in text:
            first, last = (int(part) for part in text.split('-'))
            epochs = list(range(first, last + 1))
        else:
            epochs = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise ValueError('epochs must be FIRST-LAST or comma-separated integers, got %r'
                         % (text,)) from None
    if len(set(epochs)) < 2 or min(epochs) < 0:
        raise ValueError('weight averaging needs at least two distinct epochs >= 0, got %r'
                         % (text,))
    return sorted(set(epochs))


def average_params(paths):
    """(arg, aux) element-wise means of the `.params` files at `paths`, in float32; ValueError
    naming the first file whose array names or shapes differ from the first file's."""
    sums, first = None, paths[0]
    for path in paths:
        arg, aux = checkpoint.load_params(path)
        arrays = {('arg', k): v for k, v in arg.items()}
        arrays.update({('aux', k): v for k, v in aux.items()})
        if sums is None:
            sums = {key: value.asnumpy().astype(np.float64) for key, value in arrays.items()}
            continue
        if set(arrays) != set(sums):
            odd = sorted(set(arrays) ^ set(sums))[0]
            raise ValueError('%s: holds other arrays than %s (%s:%s), not the same network'
                             % (path, first, odd[0], odd[1]))
        for key, value in arrays.items():
            if value.shape != sums[key].shape:
                raise ValueError('%s: %s:%s has shape %s, %s has %s' % (
                    path, key[0], key[1], value.shape, first, sums[key].shape))
            sums[key] += value.asnumpy()
    means = {key: mx.nd.array(total / len(paths), dtype=np.float32)
             for key, total in sums.items()}
    return ({k[1]: v for k, v in means.items() if k[0] == 'arg'},
            {k[1]: v for k, v in means.items() if k[0] == 'aux'})


def _batch_statistics_graph(symbol):
    """The inference graph of `symbol` with every BatchNorm's momentum set to 0, so that a
    training-mode pass leaves the batch's own statistics in the moving mean and variance."""
    graph = json.loads(heatmap_output(symbol).tojson())
    for node in graph['nodes']:
        if node['op'] == 'BatchNorm':
            node.setdefault('attrs', {})['momentum'] = '0'
    return mx.sym.load_json(json.dumps(graph))


def recalibrate_batchnorm(symbol, arg, aux, batches, ctx=None):
    """`aux` with each BatchNorm's moving mean and variance replaced by the mean of its
    training-mode batch statistics over `batches` (NCHW arrays of network input, all one
    shape). `symbol` is a training or inference graph holding `heatmap_output`. Returns a new
    dict; `arg` is only read. MXNet updates the moving statistics in the backward pass, so each
    batch runs forward and backward (with zero head gradients; no weight changes)."""
    ctx = ctx or mx.cpu()
    graph = _batch_statistics_graph(symbol)
    executor, sums, count = None, {}, 0
    for batch in batches:
        data = mx.nd.array(batch, ctx=ctx)
        if executor is None:
            executor = graph.simple_bind(ctx, data=data.shape, grad_req='write')
            for name, array in executor.arg_dict.items():
                if name != 'data':
                    arg[name].copyto(array)
        elif data.shape != executor.arg_dict['data'].shape:
            raise ValueError('recalibration batches must all have shape %s, got %s'
                             % (executor.arg_dict['data'].shape, data.shape))
        executor.forward(is_train=True, data=data)
        executor.backward([mx.nd.zeros_like(out) for out in executor.outputs])
        wait_for_batchnorm_statistics()
        for name, array in executor.aux_dict.items():
            sums[name] = sums.get(name, 0.0) + array.asnumpy().astype(np.float64)
        count += 1
    if count == 0:
        raise ValueError('no batch to recalibrate BatchNorm on')
    updated = dict(aux)
    updated.update({name: mx.nd.array(total / count, dtype=np.float32)
                    for name, total in sums.items()})
    return updated
