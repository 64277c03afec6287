"""The one checkpoint module: file names, loading, saving, the shape check and epoch listing.

A checkpoint is the original's `mx.model.save_checkpoint` layout: `PREFIX-symbol.json` and
`PREFIX-%04d.params` with `arg:`/`aux:` array names. Everything is written atomically, and
every failure to read one is a ValueError of one line that names the file. Training, inference,
the Gluon view and the ESSH detector all go through here.
"""
import glob
import os
import re

import mxnet as mx

from console import error_line
from fileio import atomic_write

from .heatmap_net import SIZES, heatmap_output, training_loss


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, int(epoch))


def list_epochs(prefix):
    """Sorted epoch numbers of the `PREFIX-NNNN.params` files that exist."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4,})\.params$')
    found = (pattern.match(os.path.basename(path))
             for path in glob.glob(glob.escape(prefix) + '-*.params'))
    return sorted(int(match.group(1)) for match in found if match)


def load_params(path):
    """(arg_params, aux_params) of a `.params` file; ValueError naming the file if unreadable."""
    if not os.path.isfile(path):
        raise ValueError('%s: no such checkpoint file' % path)
    try:
        blob = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError('%s: not an MXNet params file (%s)' % (path, error_line(err))) from None
    if isinstance(blob, list) and not blob:
        blob = {}   # MXNet reads an empty dict back as an empty list (parameter-free graph)
    if not isinstance(blob, dict):
        raise ValueError('%s: holds unnamed arrays, expected arg:/aux: names' % path)
    arg, aux = {}, {}
    for key, value in blob.items():
        kind, _, name = key.partition(':')
        if kind not in ('arg', 'aux') or not name:
            raise ValueError('%s: unexpected array name %r (expected arg:NAME or aux:NAME)'
                             % (path, key))
        (arg if kind == 'arg' else aux)[name] = value
    return arg, aux


def save_params(path, arg_params, aux_params):
    blob = {'arg:' + k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    blob.update({'aux:' + k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    atomic_write(path, lambda tmp: mx.nd.save(tmp, blob))


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params):
    """The original's mx.model.save_checkpoint layout, written atomically; returns the path."""
    atomic_write(symbol_path(prefix), symbol.save)
    path = params_path(prefix, epoch)
    save_params(path, arg_params, aux_params)
    return path


def load_symbol(path):
    """The Symbol of a `-symbol.json` file; ValueError naming the file if it is unusable."""
    if not os.path.isfile(path):
        raise ValueError('%s: no such symbol file' % path)
    try:
        return mx.sym.load(path)
    except mx.base.MXNetError as exc:
        raise ValueError('%s: not a readable MXNet symbol (%s)'
                         % (path, error_line(exc))) from None


def load_inference_checkpoint(prefix, epoch):
    """(inference Symbol, arg_params, aux_params) of a heatmap-network checkpoint.

    The json is either the training graph (its internal `heatmap_output` is taken, as the
    original's test scripts do) or already a single-output inference graph.
    """
    paths = (symbol_path(prefix), params_path(prefix, epoch))
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise ValueError('model file not found: %s (looked for %s and %s in %s)' % (
            ', '.join(missing), os.path.basename(paths[0]), os.path.basename(paths[1]),
            os.path.abspath(os.path.dirname(paths[0]) or '.')))
    symbol = load_symbol(paths[0])
    if 'heatmap_output' in symbol.get_internals().list_outputs():
        symbol = heatmap_output(symbol)
    elif 'softmax_label' in symbol.list_arguments() or len(symbol.list_outputs()) != 1:
        raise ValueError('%s: has no heatmap_output and is not a single-output inference graph'
                         % paths[0])
    arg_params, aux_params = load_params(paths[1])
    return symbol, arg_params, aux_params


def checkpoint_loss(prefix):
    """The heatmap loss ('ce' or 'l2') of the checkpoint's training graph, or None when its
    json is a bare inference graph (symbols.heatmap_net.training_loss)."""
    return training_loss(load_symbol(symbol_path(prefix)))


def network_sizes(symbol, source='network'):
    """(input_size, heatmap_size) the heatmap network was built for, read off its shapes.

    The graphs are fully convolutional, so the size cannot be read from the weights alone: the
    stem's stride (2 for 128/64, 4 for 256/64) is inferred from a probe input and matched with
    the supported (input, heatmap) pairs.
    """
    probe = max(size for size, _ in SIZES)
    try:
        _, out_shapes, _ = symbol.infer_shape(data=(1, 3, probe, probe))
    except mx.base.MXNetError as err:
        raise ValueError('%s: the graph does not take a (1, 3, H, W) image: %s'
                         % (source, error_line(err))) from None
    stride = probe // out_shapes[0][-1]
    for input_size, heatmap_size in SIZES:
        if input_size == heatmap_size * stride:
            return input_size, heatmap_size
    raise ValueError('%s: output stride %d matches no supported input/heatmap size (%s)'
                     % (source, stride, ', '.join('%d/%d' % s for s in SIZES)))


def checked_params(symbol, arg_params, aux_params, source, input_size, channels=3):
    """The (arg, aux) arrays `symbol` needs for a (1, channels, input_size, input_size) input,
    checked against its inferred shapes; ValueError naming `source` and the first missing or
    mis-shaped array."""
    try:
        arg_shapes, _, aux_shapes = symbol.infer_shape(
            data=(1, channels, input_size, input_size))
    except mx.base.MXNetError as err:
        raise ValueError('%s: the graph does not take a (1, %d, H, W) image: %s'
                         % (source, channels, error_line(err))) from None
    checked = []
    for names, shapes, given in ((symbol.list_arguments(), arg_shapes, arg_params),
                                 (symbol.list_auxiliary_states(), aux_shapes, aux_params)):
        needed = {name: shape for name, shape in zip(names, shapes) if name != 'data'}
        problem = param_mismatch(needed, given)
        if problem:
            raise ValueError('%s: parameters do not fit the network (%s)' % (source, problem))
        checked.append({name: given[name] for name in needed})
    return checked[0], checked[1]


def param_mismatch(shapes, given):
    """The first of the {name: shape} arrays that `given` lacks or holds in another shape, as
    text ('X is missing', 'X has shape A, the network needs B'), or None when all fit."""
    for name, shape in shapes.items():
        if name not in given:
            return '%s is missing' % name
        if tuple(given[name].shape) != tuple(shape):
            return '%s has shape %s, the network needs %s' % (name, tuple(given[name].shape),
                                                             tuple(shape))
    return None
