"""The ESSH network (VGG16 + three SSH detection modules) as an MXNet inference Symbol.

Layer names follow the original's training graph and its inference export (the names the
released `essh-0000.params` holds), so a checkpoint's parameters bind to this graph unchanged. Outputs, stride 32 then 16 then 8, three per stride:
`rpn_cls_prob_reshape_stride{s}` (N, 2A, H, W) softmax probabilities, background channels
first; `rpn_bbox_pred_stride{s}` (N, 4A, H, W); `rpn_kpoint_pred_stride{s}` (N, 10A, H, W).
"""
import mxnet as mx

from .anchors import ANCHOR_RATIOS, ANCHOR_SCALES, STRIDES

VGG_WORKSPACE = 2048
# (number of 3x3 convs, channels) of the five VGG16 groups conv1_x .. conv5_x.
VGG16_GROUPS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
# Channels of the detection module on each stride; stride 8 works on a fused, reduced map.
MODULE_CHANNELS = {32: 256, 16: 256, 8: 128}
STRIDE8_REDUCED = 128


def num_anchors(stride):
    return len(ANCHOR_SCALES[stride]) * len(ANCHOR_RATIOS)


def _head_conv(data, name, num_filter, kernel=3, act=True, bias_wd_mult=0.0):
    """A conv with the original's SSH-head variables (normal(0.01) weights, zero bias with
    lr x2), plus `<name>_relu` when `act`."""
    weight = mx.sym.Variable(name + '_weight', init=mx.init.Normal(0.01),
                             attr={'__lr_mult__': '1.0'})
    bias = mx.sym.Variable(name + '_bias', init=mx.init.Constant(0.0),
                           attr={'__lr_mult__': '2.0', '__wd_mult__': str(bias_wd_mult)})
    pad = (kernel - 1) // 2
    body = mx.sym.Convolution(data=data, weight=weight, bias=bias, num_filter=num_filter,
                              kernel=(kernel, kernel), pad=(pad, pad), stride=(1, 1), name=name)
    return mx.sym.Activation(data=body, act_type='relu', name=name + '_relu') if act else body


def _vgg16(data):
    """VGG16 up to relu5_3; returns (relu4_3 at stride 8, relu5_3 at stride 16)."""
    body = data
    taps = {}
    for group, (num_convs, channels) in enumerate(VGG16_GROUPS, start=1):
        if group > 1:
            body = mx.sym.Pooling(data=body, pool_type='max', kernel=(2, 2), stride=(2, 2),
                                  name='pool%d' % (group - 1))
        for index in range(1, num_convs + 1):
            suffix = '%d_%d' % (group, index)
            body = mx.sym.Convolution(data=body, kernel=(3, 3), pad=(1, 1), num_filter=channels,
                                      workspace=VGG_WORKSPACE, name='conv' + suffix)
            body = mx.sym.Activation(data=body, act_type='relu', name='relu' + suffix)
        taps[group] = body
    return taps[4], taps[5]


def _detection_module(body, channels, name):
    """SSH detection module: a 3x3 conv of `channels` next to a context module (3x3 reduction
    to channels/2 feeding one 3x3 branch and a two-3x3 branch), concatenated, then ReLU."""
    half = channels // 2
    direct = _head_conv(body, name + '_conv1', channels, act=False)
    reduced = _head_conv(body, name + '_context_conv1', half)
    context_5x5 = _head_conv(reduced, name + '_context_conv2', half, act=False)
    context_7x7 = _head_conv(reduced, name + '_context_conv3_1', half)
    context_7x7 = _head_conv(context_7x7, name + '_context_conv3_2', half, act=False)
    joined = mx.sym.concat(direct, context_5x5, context_7x7, dim=1, name=name + '_concat')
    return mx.sym.Activation(data=joined, act_type='relu', name=name + '_concat_relu')


def _stride8_features(relu4_3, relu5_3):
    """relu4_3 reduced to 128 channels plus relu5_3 reduced and 2x up-sampled (a fixed
    bilinear depthwise deconvolution), then a 3x3 conv."""
    lateral = _head_conv(relu4_3, 'ssh_m1_red_conv', STRIDE8_REDUCED, kernel=1, bias_wd_mult=1.0)
    top = _head_conv(relu5_3, 'ssh_m2_red_conv', STRIDE8_REDUCED, kernel=1, bias_wd_mult=1.0)
    top_up = mx.sym.Deconvolution(data=top, num_filter=STRIDE8_REDUCED, kernel=(4, 4),
                                  stride=(2, 2), pad=(1, 1), num_group=STRIDE8_REDUCED,
                                  no_bias=True, name='ssh_m2_red_upsampling',
                                  attr={'__lr_mult__': '0.0', '__wd_mult__': '0.0'})
    # An odd stride-8 map is one cell larger than the up-sampled stride-16 map.
    lateral = mx.sym.Crop(lateral, top_up, num_args=2, name='crop0')
    fused = mx.sym.elemwise_add(lateral, top_up, name='_plus0')
    return _head_conv(fused, 'ssh_m1_conv', STRIDE8_REDUCED, bias_wd_mult=1.0)


def _heads(body, stride):
    anchors = num_anchors(stride)
    score = _head_conv(body, 'rpn_cls_score_stride%d' % stride, 2 * anchors, kernel=1, act=False)
    # Softmax over (background, face) per anchor: view as (N, 2, A*H, W), then back.
    score = mx.sym.Reshape(data=score, shape=(0, 2, -1, 0),
                           name='rpn_cls_score_reshape_stride%d' % stride)
    prob = mx.sym.SoftmaxActivation(data=score, mode='channel',
                                    name='rpn_cls_prob_stride%d' % stride)
    prob = mx.sym.Reshape(data=prob, shape=(0, 2 * anchors, -1, 0),
                          name='rpn_cls_prob_reshape_stride%d' % stride)
    boxes = _head_conv(body, 'rpn_bbox_pred_stride%d' % stride, 4 * anchors, kernel=1, act=False)
    points = _head_conv(body, 'rpn_kpoint_pred_stride%d' % stride, 10 * anchors, kernel=1,
                        act=False)
    return [prob, boxes, points]


def get_essh_symbol():
    """The ESSH inference graph on input `data` (N, 3, H, W): RGB planes, means subtracted."""
    data = mx.sym.Variable('data')
    relu4_3, relu5_3 = _vgg16(data)
    pool5 = mx.sym.Pooling(data=relu5_3, pool_type='max', kernel=(2, 2), stride=(2, 2),
                           pad=(0, 0), name='pooling0')
    features = {
        32: _detection_module(pool5, MODULE_CHANNELS[32], 'ssh_m3_det'),
        16: _detection_module(relu5_3, MODULE_CHANNELS[16], 'ssh_m2_det'),
        8: _detection_module(_stride8_features(relu4_3, relu5_3), MODULE_CHANNELS[8],
                             'ssh_m1_det'),
    }
    outputs = []
    for stride in STRIDES:
        outputs.extend(_heads(features[stride], stride))
    return mx.sym.Group(outputs)


def initializer():
    """Initial weights for training from scratch, as the original: bilinear kernels for the
    fixed up-sampling deconvolution, Xavier elsewhere (head convs carry their own normal(0.01)
    and zero-bias initialisers)."""
    return mx.init.Mixed(['.*upsampling.*', '.*'], [mx.init.Bilinear(), mx.init.Xavier()])
