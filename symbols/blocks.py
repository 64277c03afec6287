"""Residual building blocks and their registry.

Every block maps `(data, num_filter, name, dim_match)` to a symbol with `num_filter` channels;
`dim_match` says whether the input already has `num_filter` channels.
"""
import mxnet as mx

from .layers import batch_norm, concat_channels, conv, conv_bn_relu, relu


def _pre_activation(data, name):
    return relu(batch_norm(data, name + '_bn1'), name + '_relu1')


def _shortcut(data, act1, num_filter, name, dim_match):
    """Identity when shapes agree, else a 1x1 projection of the pre-activated input."""
    return data if dim_match else conv(act1, num_filter, 1, name + '_sc')


def resnet_block(data, num_filter, name, dim_match):
    """Pre-activation bottleneck: 1x1 (C/2) -> 3x3 (C/2) -> 1x1 (C)."""
    half = int(num_filter * 0.5)
    act1 = _pre_activation(data, name)
    body = conv(act1, half, 1, name + '_conv1')
    body = conv(relu(batch_norm(body, name + '_bn2'), name + '_relu2'), half, 3, name + '_conv2')
    body = conv(relu(batch_norm(body, name + '_bn3'), name + '_relu3'), num_filter, 1,
                name + '_conv3')
    return body + _shortcut(data, act1, num_filter, name, dim_match)


def hpm_block(data, num_filter, name, dim_match, dilate=1):
    """Hierarchical, parallel, multi-scale block: chained 3x3 convs of C/2, C/4, C/4 concatenated."""
    act1 = _pre_activation(data, name)
    conv1 = conv(act1, int(num_filter * 0.5), 3, name + '_conv1', dilate=dilate)
    conv2 = conv(relu(batch_norm(conv1, name + '_bn2'), name + '_relu2'),
                 int(num_filter * 0.25), 3, name + '_conv2', dilate=dilate)
    conv3 = conv(relu(batch_norm(conv2, name + '_bn3'), name + '_relu3'),
                 int(num_filter * 0.25), 3, name + '_conv3', dilate=dilate)
    body = concat_channels(conv1, conv2, conv3)
    return body + _shortcut(data, act1, num_filter, name, dim_match)


def inception_block(data, num_filter, name, dim_match):
    """Inception-ResNet block35; a resnet block where the channel count changes."""
    if not dim_match:
        return resnet_block(data, num_filter, name, dim_match)
    name = name + '_block35'
    quarter = int(num_filter * 0.25)
    tower0 = conv_bn_relu(data, quarter, 1, name + '_conv')
    tower1 = conv_bn_relu(data, quarter, 1, name + '_conv1_0')
    tower1 = conv_bn_relu(tower1, quarter, 3, name + '_conv1_1')
    tower2 = conv_bn_relu(data, quarter, 1, name + '_conv2_0')
    tower2 = conv_bn_relu(tower2, int(num_filter * 0.375), 3, name + '_conv2_1')
    tower2 = conv_bn_relu(tower2, int(num_filter * 0.5), 3, name + '_conv2_2')
    mixed = concat_channels(tower0, tower1, tower2)
    out = conv_bn_relu(mixed, num_filter, 1, name + '_conv_out', act=False)
    return relu(data + 1.0 * out)


def cab_block(data, num_filter, name, dim_match, dilate=1, group=1, depth=4):
    """Channel aggregation block; an HPM block where the channel count changes."""
    if not dim_match:
        return hpm_block(data, num_filter, name, dim_match, dilate)
    return ChannelAggregation(data, num_filter, name, depth, dilate, group).output()


class ChannelAggregation:
    """The CAB lattice: node (w, h) on the bottom row halves channels left to right; every
    other node averages its lower-right neighbour with its lower neighbour's channels doubled.
    Nodes are memoised, so the graph is a DAG exactly like the original's."""

    def __init__(self, data, num_filter, name, depth, dilate, group):
        self.data, self.num_filter, self.name = data, num_filter, name
        self.depth, self.dilate, self.group = depth, dilate, group
        self._nodes = {}

    def node(self, w, h):
        key = (w, h)
        if key not in self._nodes:
            self._nodes[key] = self._build(w, h)
        return self._nodes[key]

    def _build(self, w, h):
        n = self.depth
        label = '%s_w%d_h%d' % (self.name, w, h)
        if h == n:
            if w == n:
                return self.data, self.num_filter
            body, channels = self.node(w + 1, h)
            half = int(channels * 0.5)
            dilate = self.dilate if w == n - 1 else 1
            return conv_bn_relu(body, half, 3, label + '_1', dilate=dilate,
                                group=self.group), half
        x, x_channels = self.node(w + 1, h + 1)
        y, _ = self.node(w, h + 1)
        if h % 2 == 1 and h != w:
            x = conv_bn_relu(x, x_channels, 3, label + '_2', group=x_channels)
        body = mx.sym.add_n(x, concat_channels(y, y), name=label + '_add') / 2
        return body, x_channels

    def output(self):
        return self.node(1, 1)[0]


BLOCKS = {
    'resnet': resnet_block,
    'hpm': hpm_block,
    'inception': inception_block,
    'cab': cab_block,
}


def get_block(name):
    if name not in BLOCKS:
        raise ValueError('unknown block %r; valid: %s' % (name, ', '.join(sorted(BLOCKS))))
    return BLOCKS[name]
