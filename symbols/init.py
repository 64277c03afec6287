"""Parameter initialisation of the original: bilinear up-sampling kernels, zero deformable
offsets, Xavier (gaussian, fan-in, magnitude 2) elsewhere; BatchNorm gamma 1, beta 0."""
import mxnet as mx


def initializer():
    return mx.init.Mixed(
        ['.*upsampling.*', '.*offset.*', '.*'],
        [mx.init.Bilinear(), mx.init.Zero(),
         mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)])


def init_params(symbol, data_shape):
    """Fresh (arg_params, aux_params) NDArray dicts for `symbol` fed `data` of `data_shape`."""
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=data_shape)
    init = initializer()
    attrs = symbol.attr_dict()    # BatchNorm statistics carry their own `__init__` attribute
    inputs = {'data', 'softmax_label'}
    params = []
    for names, shapes in ((symbol.list_arguments(), arg_shapes),
                          (symbol.list_auxiliary_states(), aux_shapes)):
        values = {}
        for name, shape in zip(names, shapes):
            if name in inputs:
                continue
            values[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name, attrs.get(name)), values[name])
        params.append(values)
    return params[0], params[1]
