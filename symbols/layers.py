"""The primitive layers every block is built from, with the original's parameter names."""
import mxnet as mx

BN_MOMENTUM = 0.9
BN_EPS = 2e-5
WORKSPACE = 256


def conv(data, num_filter, kernel, name, stride=1, pad=None, dilate=1, group=1, no_bias=True):
    """A square 2D convolution; `pad` defaults to 'same' for the dilated kernel."""
    if pad is None:
        pad = dilate * (kernel - 1) // 2
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(pad, pad), dilate=(dilate, dilate),
                              num_group=group, no_bias=no_bias, workspace=WORKSPACE, name=name)


def deformable_conv(data, num_filter, name, stride=1, no_bias=False):
    """3x3 deformable convolution whose offsets come from a plain 3x3 conv `<name>_offset`."""
    offset = mx.sym.Convolution(data=data, num_filter=18, kernel=(3, 3), pad=(1, 1),
                                stride=(1, 1), name=name + '_offset')
    return mx.contrib.sym.DeformableConvolution(
        data=data, offset=offset, num_filter=num_filter, kernel=(3, 3), pad=(1, 1),
        stride=(stride, stride), dilate=(1, 1), num_deformable_group=1, no_bias=no_bias,
        name=name)


def concat_channels(*parts):
    """Channel concatenation of N x C_i x H x W maps.

    Done on N x C_i x (H*W) views: MXNet 1.9.1's MKLDNN 4-D concat leaves a layout whose
    backward through a following convolution dies with SIGFPE when a part has 8 channels
    (every HPM/CAB/Inception block at 32 channels). Same values, no 4-D MKLDNN concat.
    """
    flat = mx.sym.concat(*[mx.sym.reshape(p, shape=(0, 0, -1)) for p in parts], dim=1)
    return mx.sym.reshape_like(flat, parts[0], lhs_begin=2, lhs_end=3, rhs_begin=2, rhs_end=4)


def batch_norm(data, name):
    return mx.sym.BatchNorm(data=data, fix_gamma=False, eps=BN_EPS, momentum=BN_MOMENTUM,
                            name=name)


def relu(data, name=None):
    return mx.sym.Activation(data=data, act_type='relu', name=name)


def conv_bn_relu(data, num_filter, kernel, name, stride=1, pad=None, dilate=1, group=1,
                 dcn=False, act=True):
    """`<name>_conv` -> `<name>_bn` -> `<name>_relu` (ReLU omitted when act is False).

    With `dcn` the convolution is a 3x3 deformable one with a bias, as the original's heads use.
    """
    if dcn:
        body = deformable_conv(data, num_filter, name + '_conv', stride=stride)
    else:
        body = conv(data, num_filter, kernel, name + '_conv', stride=stride, pad=pad,
                    dilate=dilate, group=group)
    body = batch_norm(body, name + '_bn')
    return relu(body, name + '_relu') if act else body
