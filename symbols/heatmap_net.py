"""The stacked heatmap network: stem, stacks of hourglass or SAT, per-stack heads and losses."""
import json
import re

import mxnet as mx

from data.landmarks import FLIP_ORDER

from .blocks import get_block
from .layers import batch_norm, conv, conv_bn_relu, deformable_conv, relu
from .topology import ScaleAggregation, hourglass

COHERENT_WEIGHT = 1e-4
SIZES = ((128, 64), (256, 64))      # (input_img_size, output_label_size) pairs supported
LOSSES = ('l2', 'ce')
SAT_MODES = (0, 1, 2)
DCN_MODES = (0, 1, 2, 3)


def l2_loss(pred, target):
    diff = pred - target
    return mx.sym.mean(diff * diff)


def ce_loss(pred, target):
    """Cross-entropy between the spatial softmax of each predicted map and the target map.

    One fused log_softmax over each map's pixels: the same value as the max/exp/sum/log
    written out with broadcast operators, which took about half of a training step of the
    shipped model's graph on a CPU (docs/benchmarks.md)."""
    log_prob = mx.sym.log_softmax(mx.sym.reshape(pred, shape=(0, 0, -1)), axis=-1)
    # Back to the maps' shape, so the target's shape is inferred from the prediction's.
    return mx.sym.mean(mx.sym.reshape_like(log_prob, pred) * target * (-1.0))


def _flip_pair(heatmap, per_batch_size):
    """The first half of the batch mirrored (maps flipped and channels permuted) and the
    second half, which the data iterator fills with the flipped copies of the first."""
    half = per_batch_size // 2
    first = mx.sym.flip(mx.sym.slice_axis(heatmap, axis=0, begin=0, end=half), axis=3)
    second = mx.sym.slice_axis(heatmap, axis=0, begin=half, end=2 * half)
    first = mx.sym.concat(*[mx.sym.slice_axis(first, axis=1, begin=int(o), end=int(o) + 1)
                            for o in FLIP_ORDER], dim=1)
    return first, second


def validate(cfg):
    """Raise ValueError naming the valid values for any option this builder cannot honour."""
    def check(key, valid):
        if cfg[key] not in valid:
            raise ValueError('%s=%r is not supported; valid: %s'
                             % (key, cfg[key], ', '.join(map(str, valid))))
    if cfg.get('net_binarize'):
        raise ValueError('net_binarize needs the QActivation/QConvolution operators of a '
                         'patched MXNet (BMXNet), which stock MXNet 1.9 does not have')
    get_block(cfg['net_block'])
    check('net_sat', SAT_MODES)
    check('net_dcn', DCN_MODES)
    check('net_loss', LOSSES)
    size = (cfg['input_img_size'], cfg['output_label_size'])
    if size not in SIZES:
        raise ValueError('input_img_size/output_label_size %d/%d is not supported; valid: %s'
                         % (size + (', '.join('%d/%d' % s for s in SIZES),)))
    # Each level of the hourglass (or row of the SAT lattice) halves the heatmap-sized
    # features, down to one pixel and not beyond.
    deepest = cfg['output_label_size'].bit_length() - 1     # floor(log2(side))
    if not 1 <= cfg['net_n'] <= deepest:
        raise ValueError('net_n must be 1..%d for %d x %d heatmaps (each level halves them), '
                         'got %r' % (deepest, cfg['output_label_size'],
                                     cfg['output_label_size'], cfg['net_n']))
    if cfg.get('grow_stacks') and cfg['net_dcn'] in (1, 3):
        raise ValueError('grow_stacks needs a plain merge between stacks: net_dcn %d puts a '
                         'deformable convolution there, which no setting makes a no-op'
                         % cfg['net_dcn'])
    if cfg['net_coherent']:
        if cfg['num_classes'] != len(FLIP_ORDER):
            raise ValueError('net_coherent needs the 68-point mirror permutation, '
                             'num_classes is %d' % cfg['num_classes'])
        if cfg['per_batch_size'] % 2:
            raise ValueError('net_coherent pairs each sample with its flipped copy in the other '
                             'half of the batch, so per_batch_size must be even, got %d'
                             % cfg['per_batch_size'])


def build(cfg):
    """The training Symbol: one MakeLoss per stack, an optional coherent loss, and
    BlockGrad(heatmap); the internal `heatmap_output` is the inference output."""
    validate(cfg)
    block = get_block(cfg['net_block'])
    m = cfg['multiplier']
    stem_filters = max(int(64 * m), 32)
    mid_filters = max(int(128 * m), 32)
    num_filter = int(256 * m)
    num_stacks = cfg['net_stacks']
    loss_fn = l2_loss if cfg['net_loss'] == 'l2' else ce_loss
    dcn_heads = cfg['net_dcn'] >= 2
    dcn_merge = cfg['net_dcn'] in (1, 3)

    data = (mx.sym.Variable('data') - 127.5) * 0.0078125
    label = mx.sym.Variable('softmax_label')
    if cfg['input_img_size'] // cfg['output_label_size'] == 4:
        body = conv(data, stem_filters, 7, 'conv0', stride=2, pad=3)
    else:
        body = conv(data, stem_filters, 3, 'conv0', stride=1, pad=1)
    body = relu(batch_norm(body, 'bn0'), 'relu0')
    body = block(body, mid_filters, 'res0', stem_filters == mid_filters)
    body = mx.sym.Pooling(data=body, kernel=(2, 2), stride=(2, 2), pad=(0, 0), pool_type='max')
    body = block(body, mid_filters, 'res1', True)
    body = block(body, num_filter, 'res2', mid_filters == num_filter)

    losses, coherent_losses, heatmap = [], [], None
    for i in range(num_stacks):
        shortcut = body
        if cfg['net_sat'] > 0:
            body = ScaleAggregation(body, num_filter, cfg['net_n'] + 1, 'sat%d' % i,
                                    mode=cfg['net_sat']).output()
        else:
            body = hourglass(body, num_filter, cfg['net_n'], 'stack%d_hg' % i, block)
        body = block(body, num_filter, 'stack%d_unit0' % i, True)
        ll = conv_bn_relu(body, num_filter, 1, 'stack%d_ll' % i, dcn=dcn_heads)
        head = 'heatmap%d' % i if i < num_stacks - 1 else 'heatmap'
        if dcn_heads:
            out = deformable_conv(ll, cfg['num_classes'], head)
        else:
            out = conv(ll, cfg['num_classes'], 1, head, no_bias=False)
        if i < num_stacks - 1:
            ll2 = conv(ll, num_filter, 1, 'stack%d_ll2' % i, no_bias=False)
            out2 = conv(out, num_filter, 1, 'stack%d_out2' % i, no_bias=False)
            body = mx.sym.add_n(shortcut, ll2, out2)
            if dcn_merge:
                body = deformable_conv(body, num_filter, 'stack%d_out3' % i)
        else:
            heatmap = out
        losses.append(loss_fn(out, label))
        if cfg['net_coherent']:
            flipped, paired = _flip_pair(out, cfg['per_batch_size'])
            coherent_losses.append(l2_loss(flipped, paired) / num_stacks)

    outputs = [mx.sym.MakeLoss(loss) for loss in losses]
    if coherent_losses:
        outputs.append(mx.sym.MakeLoss(mx.sym.add_n(*coherent_losses),
                                       grad_scale=COHERENT_WEIGHT))
    outputs.append(mx.sym.BlockGrad(heatmap))
    return mx.sym.Group(outputs)


def grow_stacks(arg_params, aux_params, num_stacks, source='the checkpoint'):
    """A checkpoint's (arg, aux) arrays for the same network with `num_stacks` stacks, more
    than it has, that gives the checkpoint's own heatmaps: each added stack is a copy of its
    last stack (body and head), and the 1 x 1 convolutions that merge a stack's features and
    heatmaps into the next one's input (`stack<i>_ll2`, `stack<i>_out2`) start at zero, so
    every added stack sees the input the last one saw. Training then starts where the
    checkpoint ended instead of from a random second stack. ValueError naming `source` when
    its arrays are not a stacked heatmap network with fewer stacks."""
    if 'heatmap_weight' not in arg_params:
        raise ValueError('%s: no heatmap_weight array, so not a checkpoint of this toolkit\'s '
                         'heatmap networks to grow' % source)
    have = 1 + sum(bool(re.fullmatch(r'heatmap\d+_weight', name)) for name in arg_params)
    if num_stacks <= have:
        raise ValueError('%s has %d stack%s; growing needs --net-stacks above that, got %d'
                         % (source, have, '' if have == 1 else 's', num_stacks))
    last = have - 1
    num_classes, num_filter = arg_params['heatmap_weight'].shape[:2]

    def copies(params, stack):
        """The last stack's body arrays renamed for `stack`."""
        copied = {}
        for name, value in params.items():
            for body in ('stack', 'sat'):
                old = '%s%d_' % (body, last)
                if name.startswith(old):
                    copied['%s%d_' % (body, stack) + name[len(old):]] = value.copy()
        return copied

    arg, aux = dict(arg_params), dict(aux_params)
    head = {name[len('heatmap_'):]: value for name, value in arg_params.items()
            if name.startswith('heatmap_')}
    for stack in range(last, num_stacks - 1):
        arg.update({'heatmap%d_%s' % (stack, part): value.copy() for part, value in head.items()})
        for merge, inputs in (('ll2', num_filter), ('out2', num_classes)):
            arg['stack%d_%s_weight' % (stack, merge)] = mx.nd.zeros(
                (num_filter, inputs, 1, 1), dtype=head['weight'].dtype)
            arg['stack%d_%s_bias' % (stack, merge)] = mx.nd.zeros(
                (num_filter,), dtype=head['weight'].dtype)
    for stack in range(have, num_stacks):
        arg.update(copies(arg_params, stack))
        aux.update(copies(aux_params, stack))
    return arg, aux


def heatmap_output(symbol):
    """The inference graph (last stack's heatmaps) inside a training symbol."""
    return symbol.get_internals()['heatmap_output']


def training_loss(symbol):
    """The heatmap loss ('ce' or 'l2') a training graph was built with, read off its operators
    (only the cross-entropy takes a log: `log_softmax`, or `log` in graphs saved before it was
    fused, as the original's), or None for a bare inference graph, which has no loss."""
    ops = {node['op'] for node in json.loads(symbol.tojson())['nodes']}
    if 'MakeLoss' not in ops:
        return None
    return 'ce' if ops & {'log_softmax', 'log'} else 'l2'
