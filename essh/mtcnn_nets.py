"""The four MTCNN networks (P-, R-, O- and L-Net) built in code, and loading their weights.

The graphs reproduce the published MXNet conversion of Zhang et al.'s Caffe models
(models/mtcnn/det1..det4-symbol.json) layer for layer, with the same parameter names and
shapes, so `models/mtcnn/det{1,2,3,4}-0001.params` load into them through
symbols.checkpoint (the old -symbol.json files are not read at run time).

Every net takes float32 BGR planes normalised as (pixel - 127.5) / 128. Outputs, in this
order (prob: a two-way softmax whose channel 1 is the face probability):

- P-Net (det1): (N, 3, H, W), H, W >= 12, fully convolutional (one cell per 12 x 12 window,
  stride 2) -> prob (N, 2, h, w), box regression (N, 4, h, w);
- R-Net (det2): (N, 3, 24, 24) -> prob (N, 2), box regression (N, 4);
- O-Net (det3): (N, 3, 48, 48) -> prob (N, 2), box regression (N, 4), points (N, 10) ordered
  x1..x5, y1..y5;
- L-Net (det4): (N, 15, 24, 24), one 24 x 24 patch per point, 3 channels each -> five (N, 2)
  point positions (x, y) inside their patches, as fractions of the patch side.

The layers follow Caffe's conventions: unpadded convolutions, max-pooling that rounds the
output size up (`pooling_convention='full'`), PReLU with one learned slope per channel
(computed with depthwise convolutions on feature maps, see `_prelu`; tests/test_mtcnn.py
checks every net against the shipped graphs to 1e-5).
"""
import os

import mxnet as mx

from symbols.checkpoint import checked_params, load_params, params_path

EPOCH = 1
NUM_POINTS = 5
# Caffe's PReLU initial slope (irrelevant for inference: the learned gammas replace it).
PRELU_SLOPE = 0.25


def _prelu(data, name, channels, spatial=True):
    """Caffe's PReLU, x for x > 0 and gamma * x otherwise, one learned `<name>_gamma` (C,) per
    channel. On feature maps it is computed as gamma * x + (1 - gamma) * relu(x), the two
    scalings as depthwise 1 x 1 convolutions: the same parameter and values equal to float
    rounding, but much faster on CPU than MXNet's own PReLU kernel (which took longer than
    all the convolutions; R-Net forwards became about 1.7x faster)."""
    if not spatial:
        return mx.sym.LeakyReLU(data=data, act_type='prelu', slope=PRELU_SLOPE, name=name)
    gamma = mx.sym.Variable(name + '_gamma', shape=(channels,))
    weight = mx.sym.reshape(gamma, shape=(channels, 1, 1, 1))
    linear = mx.sym.Convolution(data=data, weight=weight, num_filter=channels,
                                num_group=channels, kernel=(1, 1), no_bias=True,
                                name=name + '_linear')
    positive = mx.sym.Convolution(data=mx.sym.relu(data), weight=1.0 - weight,
                                  num_filter=channels, num_group=channels, kernel=(1, 1),
                                  no_bias=True, name=name + '_positive')
    return mx.sym.elemwise_add(linear, positive, name=name)


def _conv_prelu(data, index, num_filter, kernel):
    """conv<index> + prelu<index> (index: a number, or '<layer>_<branch>' in L-Net)."""
    body = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(kernel, kernel),
                              name='conv%s' % index)
    return _prelu(body, 'prelu%s' % index, num_filter)


def _max_pool(data, index, kernel):
    return mx.sym.Pooling(data=data, pool_type='max', kernel=(kernel, kernel), stride=(2, 2),
                          pooling_convention='full', name='pool%s' % index)


def _dense(data, name, num_hidden):
    return mx.sym.FullyConnected(data=data, num_hidden=num_hidden, name=name)


def _dense_prelu(data, index, num_hidden, prefix='conv'):
    return _prelu(_dense(data, '%s%s' % (prefix, index), num_hidden), 'prelu%s' % index,
                  num_hidden, spatial=False)


def pnet_symbol():
    """P-Net: three 3x3 convolutions (10, 16, 32) with one 2x2 pooling, then 1x1 heads."""
    body = _conv_prelu(mx.sym.Variable('data'), 1, 10, 3)
    body = _max_pool(body, 1, 2)
    body = _conv_prelu(body, 2, 16, 3)
    body = _conv_prelu(body, 3, 32, 3)
    score = mx.sym.Convolution(data=body, num_filter=2, kernel=(1, 1), name='conv4_1')
    prob = mx.sym.SoftmaxActivation(data=score, mode='channel', name='prob1')
    boxes = mx.sym.Convolution(data=body, num_filter=4, kernel=(1, 1), name='conv4_2')
    return mx.sym.Group([prob, boxes])


def rnet_symbol():
    """R-Net: convolutions 28/48/64 with two 3x3 poolings, a 128-unit dense layer, heads."""
    body = _conv_prelu(mx.sym.Variable('data'), 1, 28, 3)
    body = _max_pool(body, 1, 3)
    body = _conv_prelu(body, 2, 48, 3)
    body = _max_pool(body, 2, 3)
    body = _conv_prelu(body, 3, 64, 2)
    body = _dense_prelu(body, 4, 128)
    prob = mx.sym.softmax(data=_dense(body, 'conv5_1', 2), axis=1, name='prob1')
    return mx.sym.Group([prob, _dense(body, 'conv5_2', 4)])


def onet_symbol():
    """O-Net: convolutions 32/64/64/128 with three poolings, a 256-unit dense layer, heads."""
    body = _conv_prelu(mx.sym.Variable('data'), 1, 32, 3)
    body = _max_pool(body, 1, 3)
    body = _conv_prelu(body, 2, 64, 3)
    body = _max_pool(body, 2, 3)
    body = _conv_prelu(body, 3, 64, 3)
    body = _max_pool(body, 3, 2)
    body = _conv_prelu(body, 4, 128, 2)
    body = _dense_prelu(body, 5, 256)
    prob = mx.sym.softmax(data=_dense(body, 'conv6_1', 2), axis=1, name='prob1')
    return mx.sym.Group([prob, _dense(body, 'conv6_2', 4), _dense(body, 'conv6_3', 10)])


def lnet_symbol():
    """L-Net: the 15 input channels split into five 3-channel patches, each through its own
    R-Net-like trunk (convolutions 28/48/64); the five 64 x 2 x 2 maps are joined, a 256-unit
    dense layer is shared, and each point has its own 64-unit layer and (x, y) head."""
    patches = mx.sym.SliceChannel(data=mx.sym.Variable('data'), num_outputs=NUM_POINTS,
                                  axis=1, name='slice')
    trunks = []
    for point in range(1, NUM_POINTS + 1):
        body = _conv_prelu(patches[point - 1], '1_%d' % point, 28, 3)
        body = _max_pool(body, '1_%d' % point, 3)
        body = _conv_prelu(body, '2_%d' % point, 48, 3)
        body = _max_pool(body, '2_%d' % point, 3)
        trunks.append(_conv_prelu(body, '3_%d' % point, 64, 2))
    joined = _dense_prelu(mx.sym.concat(*trunks, dim=1, name='concat'), 4, 256, prefix='fc')
    return mx.sym.Group([
        _dense(_dense_prelu(joined, '4_%d' % point, 64, prefix='fc'), 'fc5_%d' % point, 2)
        for point in range(1, NUM_POINTS + 1)])


# name -> (checkpoint prefix in the model folder, graph builder, input side, input channels).
NETS = {
    'pnet': ('det1', pnet_symbol, 12, 3),
    'rnet': ('det2', rnet_symbol, 24, 3),
    'onet': ('det3', onet_symbol, 48, 3),
    'lnet': ('det4', lnet_symbol, 24, 3 * NUM_POINTS),
}


def weights_path(model_dir, net):
    return params_path(os.path.join(model_dir, NETS[net][0]), EPOCH)


def load_net(model_dir, net):
    """(symbol, arg_params) of one net: the code-built graph and the weights of
    `model_dir/detN-0001.params`, shape-checked against it. ValueError naming the file when
    it is missing, unreadable or does not fit."""
    _, build, side, channels = NETS[net]
    path = weights_path(model_dir, net)
    arg_params, aux_params = load_params(path)
    symbol = build()
    arg_params, _ = checked_params(symbol, arg_params, aux_params, path, side, channels)
    return symbol, arg_params
