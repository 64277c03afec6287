"""`make demo`: the shipped 2D model on a bundled photo; the shipped 2D and 3D models side by
side on a profile face; then a few-minute fine-tune on the built-in synthetic faces that prints
the validation NME falling, and an evaluation of the result.

The profile face is AFLW2000-3D's image00298 (|yaw| 76 degrees, in the validation split of the
3D model's card) from ../shared/data/aflw2000-3d-dev when that folder is there. The photo is not
committed (AFLW2000-3D is for research use and the project ships none of its images), so from
a clone without it the demo renders a synthetic profile face instead."""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import matplotlib.cbook  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from console import check_range, configure_logging, run_cli  # noqa: E402
import config  # noqa: E402
import essh  # noqa: E402
from data.images import read_image  # noqa: E402
from data.preview import save_png  # noqa: E402
from data.synthetic import RECORD_TOP_SHIFT, make_face  # noqa: E402
from evaluation.protocol import evaluate_rec  # noqa: E402
from fileio import check_writable_dir, write_json_atomic  # noqa: E402
from inference import FaceAligner, HeatmapModel  # noqa: E402
from inference.aligner import DEFAULT_MODEL  # noqa: E402
from inference.demo import annotate_image  # noqa: E402
from inference.draw import draw_faces  # noqa: E402
from training.run import data_paths, fit  # noqa: E402

SHIPPED_PREFIX = DEFAULT_MODEL


def photo_demo(output_dir):
    """Landmarks on matplotlib's bundled photo (Grace Hopper), faces found by the bundled MTCNN."""
    photo = str(matplotlib.cbook.get_sample_data('grace_hopper.jpg', asfileobj=False))
    aligner = FaceAligner(SHIPPED_PREFIX, 0, ctx=mx.cpu())
    png, json_path, faces = annotate_image(aligner, photo, output_dir, name='demo',
                                           png_suffix='')
    print('photo: %d face(s) -> %s, %s' % (len(faces), png, json_path))


PROFILE_PHOTO = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'aflw2000-3d-dev',
                             'image00298.jpg')
# A rendered face of the built-in generator turned 67 degrees (seed 0, split 'demo', face 4).
SYNTHETIC_PROFILE = (0, 'demo', 4)


class KnownFace:
    """A 'detector' that returns one given box on the image it was made for (and nothing on
    others): MTCNN finds no rendered profile face, but their landmarks are known."""
    name = 'known box'

    def __init__(self, image, points):
        self.shape = image.shape
        box = np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)
        self.face = essh.Face(box, 1.0, None)

    def detect(self, image, threshold):
        return [self.face] if image.shape == self.shape else []


def _captioned(image, caption):
    canvas = image.copy()
    cv2.putText(canvas, caption, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(canvas, caption, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                cv2.LINE_AA)
    return canvas


def profile_demo(output_dir):
    """The shipped 2D and 3D models on one profile face, side by side (demo-3d.png): the 2D
    model follows 300-W (jaw on the visible silhouette), the 3D model AFLW2000-3D (the jaw's
    projected 3D contour, the hidden side included)."""
    if os.path.exists(PROFILE_PHOTO):
        image, detector = read_image(PROFILE_PHOTO), 'mtcnn'
        source = PROFILE_PHOTO
    else:
        image, points = make_face(*SYNTHETIC_PROFILE)
        detector = KnownFace(image, points['3d'])
        source = 'synthetic face %s (%s not found)' % (SYNTHETIC_PROFILE, PROFILE_PHOTO)
    panels, faces = [], {}
    for landmark_type in ('2d', '3d'):
        aligner = FaceAligner(ctx=mx.cpu(), detector=detector, landmark_type=landmark_type)
        faces[landmark_type] = aligner.get_landmarks(image)
        panels.append(_captioned(draw_faces(image, faces[landmark_type]),
                                 '%s model' % landmark_type.upper()))
    png = os.path.join(output_dir, 'demo-3d.png')
    save_png(png, np.hstack(panels))
    json_path = write_json_atomic(os.path.join(output_dir, 'demo-3d.json'), {
        'image': source, 'faces': {kind: [face.to_dict() for face in found]
                                   for kind, found in faces.items()}})
    print('profile, 2D and 3D models: %s -> %s, %s' % (source, png, json_path))


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


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--output', default=os.path.join(ROOT, 'outputs'))
    parser.add_argument('--steps', type=int, default=160, help='fine-tuning batches')
    args = parser.parse_args(argv)
    # Both checked before the minutes of the photo and profile parts.
    check_range('--steps', args.steps, minimum=1)
    check_writable_dir(args.output, '--output folder')
    configure_logging()
    photo_demo(args.output)
    profile_demo(args.output)
    synthetic_demo(args.output, args.steps)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
