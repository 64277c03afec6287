"""Training throughput on this machine: the full pipeline (FaceSegIter on synthetic faces +
training.Trainer) beside a bare Module loop over one random batch of the same graph (the
ceiling: no data loading, logging or checks).

  python scripts/bench_train.py --models hg2d3-cab,hg2d3-cab@0.25 --batch-size 8 --batches 4
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402

from console import configure_logging  # noqa: E402
import config  # noqa: E402
from data.iterator import FaceSegIter  # noqa: E402
from data.synthetic import ensure_synthetic  # noqa: E402
from symbols import get_symbol, initializer  # noqa: E402
from training import Trainer  # noqa: E402
from training.optimizer import ONadam  # noqa: E402


def model_config(spec, batch_size, prefix):
    """'hg2d3-cab' or 'hg2d3-cab@0.25' (width multiplier) -> a synth2d training config."""
    name, _, multiplier = spec.partition('@')
    network, overrides = {'hg2d3-cab': ('hourglass', {'net_n': 3, 'net_block': 'cab'}),
                          'sat2d3-cab': ('satnet', {'net_n': 3, 'net_block': 'cab'})}[name]
    return config.generate_config(network, 'synth2d', multiplier=float(multiplier or 1.0),
                                  per_batch_size=batch_size, prefix=prefix, frequent=10 ** 9,
                                  verbose=10 ** 9, **overrides)


def timed(step, warmup, batches, batch_size):
    for _ in range(warmup):
        step()
    mx.nd.waitall()
    tic = time.time()
    for _ in range(batches):
        step()
    mx.nd.waitall()
    return batches * batch_size / (time.time() - tic)


def bare_loop(cfg, batch_size, warmup, batches):
    symbol = get_symbol(cfg)
    module = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'])
    data_shape = (batch_size, 3, cfg['input_img_size'], cfg['input_img_size'])
    label_shape = (batch_size, cfg['num_classes'], cfg['output_label_size'],
                   cfg['output_label_size'])
    module.bind(data_shapes=[('data', data_shape)], label_shapes=[('softmax_label', label_shape)])
    module.init_params(initializer())
    # rescale_grad does not change the cost; 1/batch keeps Module from warning about it.
    module.init_optimizer(optimizer=ONadam(learning_rate=cfg['lr'], rescale_grad=1.0 / batch_size))
    batch = mx.io.DataBatch([mx.nd.random.uniform(0, 255, data_shape)],
                            [mx.nd.random.uniform(0, 1, label_shape)])

    def step():
        module.forward_backward(batch)
        module.update()
    return timed(step, warmup, batches, batch_size)


def pipeline(cfg, batch_size, warmup, batches, train_rec, num_workers):
    train_iter = FaceSegIter(train_rec, batch_size, cfg, aug_level=1, num_workers=num_workers)
    try:
        trainer = Trainer(cfg, [mx.cpu()], train_iter, train_iter.num_samples)
        return timed(trainer.train_batch, warmup, batches, batch_size)
    finally:
        train_iter.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', default='hg2d3-cab,hg2d3-cab@0.25')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--batches', type=int, default=4)
    p.add_argument('--num-workers', type=int, help='data workers (default: one per core)')
    p.add_argument('--data-dir', help='synthetic data folder (default: a temporary one)')
    args = p.parse_args()
    configure_logging()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or os.path.join(tmp, 'synth2d')
        count = max(64, 2 * args.batch_size * (args.warmup + args.batches))
        counts = {'train': count, 'val': 8, 'test': 8}
        train_rec = ensure_synthetic(data_dir, counts=counts)['train']
        print('%-16s %12s %12s %8s' % ('model', 'pipeline/s', 'bare/s', 'ratio'))
        for spec in args.models.split(','):
            try:
                cfg = model_config(spec, args.batch_size, os.path.join(tmp, 'model'))
            except KeyError:
                print('error: unknown model %r (hg2d3-cab or sat2d3-cab, optional @multiplier)'
                      % spec, file=sys.stderr)
                return 2
            bare = bare_loop(cfg, args.batch_size, args.warmup, args.batches)
            full = pipeline(cfg, args.batch_size, args.warmup, args.batches, train_rec,
                            args.num_workers)
            print('%-16s %12.2f %12.2f %7.0f%%' % (spec, full, bare, 100 * full / bare))
    return 0


if __name__ == '__main__':
    sys.exit(main())
