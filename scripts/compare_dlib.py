"""Compare a heatmap-network checkpoint with dlib's 68-point shape predictor on one packed test
set: both NMEs and ms per face.

    python scripts/compare_dlib.py --rec datasets/i2d/ibug.rec \
        --prefix models/model-hg2d3-cab/model --epoch 0 --landmark-type 2d

Box choice: each record's face box is the bounding box of its ground-truth 68 points, given to
both models. dlib fits its shape inside that rectangle; our network gets the 1.2 x max(w, h)
square around the box centre warped onto 128 x 128 (the crop FaceAligner makes from a detector
box) and its points are mapped back. Neither gets the published protocol's five-point
alignment and top shift, so the numbers compare the two models with each other, not with the
published table. NME: eye-centre distance (2D) or sqrt(box w * h) (3D) normaliser, as
evaluation.metrics.nme. Times are per face at batch 1, from the record image to landmarks.

dlib is optional: `pip install -r requirements-dlib.txt`.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from inference.dlib_compare import compare_with_dlib, load_dlib_predictor  # noqa: E402
from inference.onnx_model import BACKENDS, load_heatmap_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rec', required=True, help='packed test set (.rec with its .idx)')
    parser.add_argument('--prefix', required=True,
                        help='checkpoint prefix (or a .onnx file with --backend onnxruntime)')
    parser.add_argument('--epoch', type=int, default=0)
    parser.add_argument('--landmark-type', choices=('2d', '3d'), default='2d')
    parser.add_argument('--backend', choices=BACKENDS, default='mxnet')
    parser.add_argument('--decode', choices=('subpixel', 'argmax'), default='subpixel')
    parser.add_argument('--dlib-model', help="dlib shape predictor .dat (default: "
                        "face_recognition_models' 68-point model)")
    args = parser.parse_args(argv)
    try:
        dlib_landmarks = load_dlib_predictor(args.dlib_model)
        model = load_heatmap_model(args.prefix, args.epoch, backend=args.backend, batch_size=1)
        result = compare_with_dlib(model, dlib_landmarks, args.rec, args.landmark_type,
                                   args.decode)
    except ValueError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    print('\n'.join(result.summary_lines()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
