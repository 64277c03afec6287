"""Training throughput on this machine, float32 beside bf16: the full pipeline (FaceSegIter on
synthetic faces + training.Trainer) and a bare Module loop over one random batch of the same
graph (the ceiling: no data loading, logging or checks), for each model. All loops of a model
take turns batch by batch, so that load from other jobs spreads over them alike. bf16 is
timed on CPUs with avx512_bf16/amx_bf16 only.

  python scripts/bench_train.py                      # the shipped model's graph and hg2d3-cab
  python scripts/bench_train.py --models hg2d3-cab@0.25 --batch-size 8 --batches 4
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402

from console import check_range, configure_logging, progress, run_cli  # noqa: E402
import config  # noqa: E402
from data.iterator import FaceSegIter  # noqa: E402
from data.synthetic import ensure_synthetic  # noqa: E402
from symbols import get_symbol, initializer  # noqa: E402
from symbols.precision import (bf16_training_graph, bf16_unsupported_reason,  # noqa: E402
                               cpu_flags, prepare_bf16)
from training import Trainer  # noqa: E402
from training.optimizer import ONadam  # noqa: E402

# model name -> (network preset, overrides); '@m' after a name sets the width multiplier.
MODELS = {
    'hg1d4-resnet': ('hourglass', dict(config.SHIPPED_NETWORK, multiplier=1.0)),
    'hg2d3-cab': ('hourglass', {'net_n': 3, 'net_block': 'cab'}),
    'sat2d3-cab': ('satnet', {'net_n': 3, 'net_block': 'cab'}),
}
SHIPPED_GRAPH = 'hg1d4-resnet@%g' % config.SHIPPED_NETWORK['multiplier']


def model_config(spec, batch_size, prefix, dtype):
    """'hg2d3-cab' or 'hg1d4-resnet@0.25' (width multiplier) -> a synth2d training config."""
    name, multiplier = parse_model_spec(spec)
    network, overrides = MODELS[name]
    overrides = dict(overrides, multiplier=multiplier or overrides.get('multiplier', 1.0))
    return config.generate_config(network, 'synth2d', per_batch_size=batch_size, prefix=prefix,
                                  frequent=10 ** 9, verbose=10 ** 9, dtype=dtype, **overrides)


def bare_step(cfg, batch_size):
    """One forward/backward/update of the training graph on a fixed random batch."""
    symbol = get_symbol(cfg)
    data_shape = (batch_size, 3, cfg['input_img_size'], cfg['input_img_size'])
    label_shape = (batch_size, cfg['num_classes'], cfg['output_label_size'],
                   cfg['output_label_size'])
    if cfg['dtype'] == 'bf16':
        symbol, _ = bf16_training_graph(symbol, {'data': data_shape,
                                                 'softmax_label': label_shape})
    module = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'])
    module.bind(data_shapes=[('data', data_shape)], label_shapes=[('softmax_label', label_shape)])
    module.init_params(initializer())
    # rescale_grad does not change the cost; 1/batch keeps Module from warning about it.
    module.init_optimizer(optimizer=ONadam(learning_rate=cfg['lr'], rescale_grad=1.0 / batch_size))
    batch = mx.io.DataBatch([mx.nd.random.uniform(0, 255, data_shape)],
                            [mx.nd.random.uniform(0, 1, label_shape)])

    def step():
        module.forward_backward(batch)
        module.update()
    return step


def timed_in_turns(steps, warmup, batches, batch_size, desc):
    """{name: (samples/s, samples per CPU-second)} of the `steps` ({name: function}), each
    called `batches` times, in turns, after `warmup` calls each."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    mx.nd.waitall()
    wall = dict.fromkeys(steps, 0.0)
    cpu = dict.fromkeys(steps, 0.0)
    for _ in progress(range(batches), desc=desc, unit='round'):
        for name, step in steps.items():
            tic, cpu_tic = time.perf_counter(), time.process_time()
            step()
            mx.nd.waitall()
            wall[name] += time.perf_counter() - tic
            cpu[name] += time.process_time() - cpu_tic
    samples = batches * batch_size
    return {name: (samples / wall[name], samples / cpu[name]) for name in steps}


def measure(spec, dtypes, args, train_rec, scratch):
    """{(loop, dtype): (samples/s, per CPU-s)} for one model, loop 'pipeline' or 'bare'."""
    steps, iterators = {}, []
    try:
        for dtype in dtypes:
            cfg = model_config(spec, args.batch_size, os.path.join(scratch, dtype, 'model'),
                               dtype)
            steps[('bare', dtype)] = bare_step(cfg, args.batch_size)
            train_iter = FaceSegIter(train_rec, args.batch_size, cfg, aug_level=1,
                                     num_workers=args.num_workers)
            iterators.append(train_iter)
            trainer = Trainer(cfg, [mx.cpu()], train_iter, train_iter.num_samples)
            steps[('pipeline', dtype)] = trainer.train_batch
        return timed_in_turns(steps, args.warmup, args.batches, args.batch_size, spec)
    finally:
        for train_iter in iterators:
            train_iter.close()


def table(spec, dtypes, results):
    lines = []
    for dtype in dtypes:
        full, bare = results[('pipeline', dtype)], results[('bare', dtype)]
        lines.append('%-18s %-8s %11.2f %11.2f %11.2f %11.2f %7.0f%%' % (
            spec, dtype, full[0], full[1], bare[0], bare[1], 100 * full[0] / bare[0]))
    if 'bf16' in dtypes:
        def ratio(loop, index):
            return results[(loop, 'bf16')][index] / results[(loop, 'float32')][index]
        lines.append('%-18s bf16 / float32: pipeline %.2fx (CPU %.2fx), bare %.2fx (CPU %.2fx)'
                     % (spec, ratio('pipeline', 0), ratio('pipeline', 1), ratio('bare', 0),
                        ratio('bare', 1)))
    return lines


def parse_model_spec(spec):
    """'hg2d3-cab' or 'hg1d4-resnet@0.25' -> (name, multiplier or None); one-line ValueError
    naming --models for an unknown name or a multiplier that is not a number > 0."""
    name, at, multiplier = spec.partition('@')
    if name not in MODELS:
        raise ValueError('--models: unknown model %r (%s, optional @multiplier)'
                         % (spec, ', '.join(MODELS)))
    if not at:
        return name, None
    try:
        value = float(multiplier)
    except ValueError:
        value = None
    if value is None or not 0 < value < float('inf'):
        raise ValueError('--models: the multiplier of %r must be a number > 0' % spec)
    return name, value


def _main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', default='%s,hg2d3-cab' % SHIPPED_GRAPH,
                   help='comma-separated: %s, each with an optional @multiplier'
                   % ', '.join(MODELS))
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--batches', type=int, default=4, help='timed batches of each loop')
    p.add_argument('--num-workers', type=int, help='data workers (default: one per core)')
    p.add_argument('--data-dir', help='synthetic data folder (default: a temporary one)')
    args = p.parse_args(argv)
    specs = args.models.split(',')
    for spec in specs:
        parse_model_spec(spec)
    check_range('--batch-size', args.batch_size, minimum=1)
    check_range('--batches', args.batches, minimum=1)
    check_range('--warmup', args.warmup, minimum=0)
    check_range('--num-workers', args.num_workers, minimum=0)
    if args.data_dir and os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
        raise ValueError('%s: --data-dir is not a folder' % args.data_dir)
    configure_logging()
    no_bf16 = bf16_unsupported_reason(cpu_flags())
    if no_bf16:
        print('bf16 not timed: %s' % no_bf16)
    else:
        prepare_bf16()      # before any operator runs, so that AMX is used
    dtypes = ('float32',) if no_bf16 else ('float32', 'bf16')
    print('load average %.2f %.2f %.2f on %d CPUs' % (os.getloadavg() + (os.cpu_count(),)))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or os.path.join(tmp, 'synth2d')
        count = max(64, 2 * args.batch_size * (args.warmup + args.batches))
        counts = {'train': count, 'val': 8, 'test': 8}
        train_rec = ensure_synthetic(data_dir, counts=counts)['train']
        lines = ['%-18s %-8s %11s %11s %11s %11s %8s' % (
            'model', 'dtype', 'pipeline/s', 'per CPU-s', 'bare/s', 'per CPU-s', 'ratio')]
        for spec in specs:
            results = measure(spec, dtypes, args, train_rec, os.path.join(tmp, spec))
            lines += table(spec, dtypes, results)
        print('\n'.join(lines))
        print('load average %.2f %.2f %.2f' % os.getloadavg())
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
