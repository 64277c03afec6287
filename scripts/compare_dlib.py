r"""Compare a heatmap-network checkpoint with dlib's 68-point shape predictor on one packed test
set: both NMEs and ms per face.

    python scripts/compare_dlib.py --rec datasets/i2d/ibug.rec \
        --prefix models/model-hg2d3-cab/model --epoch 0 --landmark-type 2d

Boxes: each record's face box is the bounding box of its ground-truth 68 points, given to
both models, and each model turns it into its input with its own convention, measured on the
300-W training faces: our network crops it as the published protocol does (top raised, 1.2 x
max side); dlib gets it moved to where its own HOG detector puts faces (re-measure that with
--measure-dlib-boxes TRAIN_REC). dlib on the raw box is printed too. NME: eye-centre distance
(2D) or sqrt(box w * h) (3D) normaliser, as evaluation.metrics.nme. Times are per face at
batch 1, from the record image to landmarks.

dlib is optional: `pip install -r requirements-dlib.txt`.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import configure_logging  # noqa: E402
from data.codec import DECODE_METHODS  # noqa: E402
from data.geometry import TOP_SHIFT  # noqa: E402
from data.recordio import top_shift_for  # noqa: E402
from evaluation.protocol import evaluate_rec  # noqa: E402
from inference import BACKENDS, load_heatmap_model  # noqa: E402
from inference.aligner import DEFAULT_MODEL  # noqa: E402
from inference.model_dir import shape_prior_for  # noqa: E402
from evaluation.plots import save_ced_plot  # noqa: E402
from inference import FaceAligner  # noqa: E402
from scripts.dlib_peer import (compare_with_dlib, load_dlib_predictor,  # noqa: E402
                               measure_dlib_box_convention)
from scripts.end_to_end import compare_end_to_end  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rec', help='packed test set (.rec with its .idx)')
    parser.add_argument('--prefix', default=DEFAULT_MODEL,
                        help='checkpoint prefix (or a .onnx file with --backend onnxruntime); '
                             'default: the shipped model')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--landmark-type', choices=('2d', '3d'), default='2d')
    parser.add_argument('--backend', choices=BACKENDS, default='auto',
                        help='auto: onnxruntime on the CPU when installed, else mxnet')
    parser.add_argument('--decode', choices=DECODE_METHODS, default='subpixel')
    parser.add_argument('--flip-test', action='store_true',
                        help='our model averages each crop with its mirror image')
    parser.add_argument('--shape-prior', default='auto', metavar='auto|off|PATH',
                        help='refine our points with the shape prior fitted to the checkpoint '
                             '(auto: the one beside it, if any; data/shape_prior.py); the '
                             'original-protocol line never uses it')
    parser.add_argument('--top-shift', type=int, default=None,
                        help='protocol box top shift of the original-protocol line (default: '
                             'the one --rec was packed with, else the 300W preset, 40)')
    parser.add_argument('--dlib-model', help="dlib shape predictor .dat (default: "
                        "face_recognition_models' 68-point model)")
    parser.add_argument('--end-to-end', metavar='FOLDER_OR_REC',
                        help='photos with .pts files, or a .rec\'s record images: our detector '
                             '+ model (FaceAligner, refinement on) against dlib\'s HOG '
                             'detector + predictor, misses counted for both; writes '
                             '--output/end_to_end_ced.png. With --rec, runs after the '
                             'ground-truth-crop comparisons, in the same run')
    parser.add_argument('--detector', default='mtcnn', choices=('mtcnn', 'essh', 'haar'),
                        help='our face detector for --end-to-end')
    parser.add_argument('--output', default=os.path.join('outputs', 'compare'),
                        help='folder for the --end-to-end CED plot')
    parser.add_argument('--measure-dlib-boxes', metavar='TRAIN_REC',
                        help="only measure where dlib's detector puts its box relative to the "
                        'landmark box on these training faces, and print it')
    args = parser.parse_args(argv)
    configure_logging()
    if args.measure_dlib_boxes:
        try:
            convention, matched = measure_dlib_box_convention(args.measure_dlib_boxes)
        except ValueError as exc:
            print('error: %s' % exc, file=sys.stderr)
            return 2
        print('dlib detector box over %d faces: centre offset %+.3f w, %+.3f h; size %.3f w x '
              '%.3f h' % ((matched,) + convention))
        return 0
    if not args.rec and not args.end_to_end:
        parser.error('--rec or --end-to-end is required')
    if args.rec:
        status = same_box(args)
        if status or not args.end_to_end:
            return status
    return end_to_end(args)


def same_box(args):
    """The original-protocol line and the same-box comparison on --rec."""
    try:
        prior = shape_prior_for(args.prefix, args.epoch, args.shape_prior)
        dlib_landmarks = load_dlib_predictor(args.dlib_model)
        model = load_heatmap_model(args.prefix, args.epoch, backend=args.backend, batch_size=1,
                                   flip_test=args.flip_test)
        top_shift = (top_shift_for(args.rec, preset=TOP_SHIFT['300W'])
                     if args.top_shift is None else args.top_shift)
        protocol = evaluate_rec(model, args.rec, os.path.basename(args.rec),
                                args.landmark_type, top_shift, progress=False)
        print('original protocol (ground-truth crop, argmax, top shift %d): ours %.3f%% on %d '
              'faces' % (top_shift, protocol.mean_nme * 100, len(protocol.record_ids)))
        print('shape prior: %s' % ('on' if prior else 'off'))
        result = compare_with_dlib(model, dlib_landmarks, args.rec, args.landmark_type,
                                   args.decode, shape_prior=prior)
    except ValueError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    print('\n'.join(result.summary_lines()))
    return 0


def end_to_end(args):
    try:
        aligner = FaceAligner(args.prefix, args.epoch, backend=args.backend, batch_size=1,
                              decode=args.decode, flip_test=args.flip_test,
                              detector=args.detector, shape_prior=args.shape_prior)
        print('shape prior: %s' % ('on' if aligner.shape_prior else 'off'))
        result = compare_end_to_end(aligner, args.end_to_end, args.dlib_model)
        print('\n'.join(result.summary_lines()))
        os.makedirs(args.output, exist_ok=True)
        path = save_ced_plot(result.ced_curves(), os.path.join(args.output, 'end_to_end_ced.png'),
                             title='End to end on %s' % os.path.basename(
                                 os.path.normpath(args.end_to_end)))
    except (ValueError, OSError) as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    print('wrote ced: %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
