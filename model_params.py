"""Reading and checking MXNet parameter files, with one-line errors that name the file."""
import os

import mxnet as mx


def error_line(err):
    """The informative line of an MXNet error: its last one (the first is a traceback header)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def load_params(path):
    """(arg_params, aux_params) of a `.params` file; ValueError naming the file if unreadable."""
    if not os.path.isfile(path):
        raise ValueError('%s: no such checkpoint file' % path)
    try:
        blob = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError('%s: not an MXNet params file (%s)' % (path, error_line(err))) from None
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


def checked_params(symbol, arg_params, aux_params, source, input_size):
    """The (arg, aux) arrays `symbol` needs for a (1, 3, input_size, input_size) image,
    checked against its inferred shapes; ValueError naming `source` and the first missing or
    mis-shaped array."""
    try:
        arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, input_size, input_size))
    except mx.base.MXNetError as err:
        raise ValueError('%s: the graph does not take a (1, 3, H, W) image: %s'
                         % (source, error_line(err))) from None
    checked = []
    for names, shapes, given in ((symbol.list_arguments(), arg_shapes, arg_params),
                                 (symbol.list_auxiliary_states(), aux_shapes, aux_params)):
        needed = {}
        for name, shape in zip(names, shapes):
            if name == 'data':
                continue
            if name not in given:
                raise ValueError('%s: parameters do not fit the network (%s is missing)'
                                 % (source, name))
            if tuple(given[name].shape) != tuple(shape):
                raise ValueError('%s: parameters do not fit the network (%s has shape %s, the '
                                 'network needs %s)' % (source, name, tuple(given[name].shape),
                                                        tuple(shape)))
            needed[name] = given[name]
        checked.append(needed)
    return checked[0], checked[1]
