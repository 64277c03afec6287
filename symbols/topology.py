"""The two stack topologies: the stacked hourglass and the Scale Aggregation Topology (SAT)."""
import mxnet as mx

from .blocks import ChannelAggregation
from .layers import batch_norm, conv_bn_relu, relu, WORKSPACE


def _max_pool(data):
    return mx.sym.Pooling(data=data, kernel=(2, 2), stride=(2, 2), pad=(0, 0), pool_type='max')


def _nearest_up(data, name):
    return mx.sym.UpSampling(data, scale=2, sample_type='nearest', workspace=512, name=name,
                             num_args=1)


def hourglass(data, num_filter, depth, name, block):
    """Recursive hourglass: a full-resolution branch plus a pooled branch that recurses
    `depth - 1` more times, each branch one `block`, merged after nearest up-sampling."""
    upper = block(data, num_filter, '%s_up1_0' % name, True)
    lower = block(_max_pool(data), num_filter, '%s_low1_0' % name, True)
    if depth > 1:
        lower = hourglass(lower, num_filter, depth - 1, '%s_%d' % (name, depth - 1), block)
    else:
        lower = block(lower, num_filter, '%s_low2_0' % name, True)
    lower = block(lower, num_filter, '%s_low3_0' % name, True)
    return mx.sym.add_n(upper, _nearest_up(lower, '%s_upsampling_%s' % (name, depth)))


class ScaleAggregation:
    """SAT lattice of side `size`: the bottom row walks down in scale (CAB, pool, CAB); every
    other node (w, h) averages its lower-right neighbour (same scale) with its lower neighbour
    brought up to that scale. With `mode == 2` node (2, 3) is also gated by the global average
    of node (3, 3)."""

    def __init__(self, data, num_filter, size, name, mode=1):
        self.data, self.num_filter, self.size, self.name, self.mode = (
            data, num_filter, size, name, mode)
        self._nodes = {}

    def _cab(self, data, name):
        return ChannelAggregation(data, self.num_filter, name, 4, 1, 1).output()

    def node(self, w, h):
        if not (1 <= w <= self.size and 1 <= h <= self.size):
            raise ValueError('SAT node (%d, %d) outside a lattice of side %d' % (w, h, self.size))
        key = (w, h)
        if key not in self._nodes:
            self._nodes[key] = self._build(w, h)
        return self._nodes[key]

    def _build(self, w, h):
        label = '%s_w%d_h%d' % (self.name, w, h)
        if h == self.size:
            if w == self.size:
                return self.data, 64
            body, scale = self.node(w + 1, h)
            body = _max_pool(self._cab(body, label + '_1'))
            return self._cab(body, label + '_2'), scale // 2
        x, x_scale = self.node(w + 1, h + 1)
        y, y_scale = self.node(w, h + 1)
        if h % 2 == 1 and h != w:
            x = conv_bn_relu(x, self.num_filter, 3, label + '_x', group=self.num_filter)
        if x_scale // y_scale == 2:
            up_name = '%s_upsampling_w%d_h%d' % (self.name, w, h)
            if w > 1:
                y = mx.sym.Deconvolution(data=y, num_filter=self.num_filter, kernel=(2, 2),
                                         stride=(2, 2), name=up_name, attr={'lr_mult': '1.0'},
                                         workspace=WORKSPACE)
                y = relu(batch_norm(y, label + '_y_bn'), label + '_y_act')
            else:
                y = self._cab(_nearest_up(y, up_name), label + '_4')
        else:
            y = self._cab(y, label + '_5')
        body = (x + y) / 2
        if self.mode == 2 and h == 3 and w == 2:
            gate, gate_scale = self.node(w + 1, h)
            gate = mx.sym.Pooling(data=gate, kernel=(gate_scale, gate_scale),
                                  stride=(gate_scale, gate_scale), pad=(0, 0), pool_type='avg')
            body = mx.sym.broadcast_mul(body, gate)
        return body, x_scale

    def output(self):
        return self.node(1, 1)[0]
