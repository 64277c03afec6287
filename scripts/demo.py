"""`make demo`: the shipped model on a bundled photo, then a few-minute fine-tune on the built-in
synthetic faces that prints the validation NME falling, and an evaluation of the result."""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import matplotlib.cbook  # noqa: E402
import mxnet as mx  # noqa: E402

from console import configure_logging  # noqa: E402
import config  # noqa: E402
from data.synthetic import RECORD_TOP_SHIFT  # noqa: E402
from evaluation.protocol import evaluate_rec  # noqa: E402
from inference import FaceAligner, HeatmapModel  # noqa: E402
from inference.aligner import DEFAULT_MODEL  # noqa: E402
from inference.demo import annotate_image  # noqa: E402
from training.run import data_paths, fit  # noqa: E402

SHIPPED_PREFIX = DEFAULT_MODEL


def photo_demo(output_dir):
    """Landmarks on matplotlib's bundled photo (Grace Hopper), faces found by the bundled MTCNN."""
    photo = str(matplotlib.cbook.get_sample_data('grace_hopper.jpg', asfileobj=False))
    aligner = FaceAligner(SHIPPED_PREFIX, 0, ctx=mx.cpu())
    png, json_path, faces = annotate_image(aligner, photo, output_dir, name='demo',
                                           png_suffix='')
    print('photo: %d face(s) -> %s, %s' % (len(faces), png, json_path))


def evaluate(prefix, epoch, rec):
    """Eye-centre NME (docs/protocol.md) as a printable string, cropped with the top shift the
    synthetic records are laid out with, as training validation does."""
    model = HeatmapModel(prefix, epoch, ctx=mx.cpu())
    result = evaluate_rec(model, rec, 'synth2d', '2d', RECORD_TOP_SHIFT, decode='subpixel',
                          progress=False)
    return 'NME %.3f%%' % (result.mean_nme * 100)


def synthetic_demo(output_dir, steps):
    """Fine-tune the shipped model on synth2d and evaluate it on the synthetic test split."""
    prefix = os.path.join(output_dir, 'synth2d-finetune', 'model')
    verbose = max(steps // 4, 1)
    cfg = config.generate_config('hourglass', 'synth2d', prefix=prefix, verbose=verbose,
                                 frequent=10, lr=1e-3, lr_epoch_step='100',
                                 pretrained=SHIPPED_PREFIX, pretrained_epoch=0,
                                 **config.SHIPPED_NETWORK)
    _, val_recs = data_paths(cfg)
    test_rec = os.path.join(cfg['data_dir'], 'test.rec')
    print('before fine-tuning, synthetic test set:', evaluate(SHIPPED_PREFIX, 0, test_rec))
    # The demo's own scratch run: a second `make demo` starts it over.
    summary = fit(cfg, [mx.cpu()], num_workers=1, max_batches=steps, force=True)
    saved = summary['last_saved']
    epoch = int(saved.rsplit('-', 1)[1].split('.')[0])
    print('after %d steps, synthetic test set: %s' % (steps, evaluate(prefix, epoch, test_rec)))
    print('training curves:', prefix + '-curves.png')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--output', default=os.path.join(ROOT, 'outputs'))
    parser.add_argument('--steps', type=int, default=160, help='fine-tuning batches')
    args = parser.parse_args()
    configure_logging()
    os.makedirs(args.output, exist_ok=True)
    try:
        photo_demo(args.output)
        synthetic_demo(args.output, args.steps)
    except ValueError as err:
        sys.exit('error: %s' % err)


if __name__ == '__main__':
    main()
