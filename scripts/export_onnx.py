r"""Export a checkpoint's heatmap network (`heatmap_output`) to ONNX.

    python scripts/export_onnx.py --prefix models/model-hg2d3-cab/model --epoch 0 \
        --output model.onnx

Input `data`: N x 3 x 128 x 128 RGB, 0..255 floats (the graph normalises); output: N x 68 x
64 x 64 heatmaps. N is free unless --batch-size fixes it. Run the file with
`FaceAligner(path, backend='onnxruntime')` or inference.onnx_model.OnnxHeatmapModel.

When the checkpoint has a shape prior fitted to it (data/shape_prior.py), it is written beside
the export as NAME.shape-prior.npz, and the export records the SHA-256 of the weights it came
from, so FaceAligner and evaluate.py use that prior with the .onnx file too. Without one, a
NAME.shape-prior.npz fitted to other weights (an earlier export's) is removed.

--int8-calibration REC writes an int8-quantized model instead, its activation ranges taken
from protocol crops of the first --calibration-faces records of REC (inference.onnx_quantize):

    python scripts/export_onnx.py --prefix models/hg1d4-resnet-m025-300w/model \
        --output model-int8.onnx --int8-calibration datasets/300w/train.rec
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import check_range, run_cli  # noqa: E402
from fileio import check_writable_dir  # noqa: E402
from data.shape_prior import load_shape_prior  # noqa: E402
from inference.model_dir import (checkpoint_prefix, is_onnx_file, params_digest,  # noqa: E402
                                 shape_prior_for, shape_prior_path)
from inference.onnx_export import export_onnx, onnx_model_of  # noqa: E402
from inference.onnx_quantize import (DEFAULT_CALIBRATION_FACES, calibration_crops,  # noqa: E402
                                     model_input_size, save_quantized)


def _drop_stale_prior(path, digest):
    """Remove the shape prior beside a new export that has none when it was fitted to other
    weights than `digest` (an earlier export's: FaceAligner would only warn about it). One
    fitted to these weights (fit_shape_prior.py --output) is kept, and a file that is no
    readable prior is left to whoever put it there."""
    try:
        fitted_to = load_shape_prior(path).params_sha256
    except ValueError as err:
        print('left as it is: %s' % err)
        return
    if fitted_to == digest:
        print('kept %s (its shape prior, fitted to these weights)' % path)
    else:
        os.remove(path)
        print('removed %s (the shape prior of an earlier export, fitted to other weights)'
              % path)


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefix', required=True,
                        help='checkpoint prefix (<prefix>-symbol.json, <prefix>-NNNN.params) '
                             'or model directory')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint epoch')
    parser.add_argument('--output', required=True, help='.onnx file to write')
    parser.add_argument('--batch-size', type=int,
                        help='fixed batch size (default: dynamic batch dimension)')
    parser.add_argument('--int8-calibration', metavar='REC',
                        help='quantize to int8, calibrating on faces of this .rec file')
    parser.add_argument('--calibration-faces', type=int,
                        help='records of --int8-calibration to calibrate on (default %d)'
                             % DEFAULT_CALIBRATION_FACES)
    args = parser.parse_args(argv)
    if args.calibration_faces is not None and not args.int8_calibration:
        raise ValueError('--calibration-faces given without --int8-calibration, which it '
                         'sizes')
    check_range('--calibration-faces', args.calibration_faces, minimum=1)
    check_range('--batch-size', args.batch_size, minimum=1)
    check_range('--epoch', args.epoch, minimum=0)
    if not is_onnx_file(args.output):
        # Its prior goes beside it as NAME.shape-prior.npz; any other name would map to its
        # folder's shape-prior.npz, which may be a checkpoint's.
        raise ValueError('%s: --output must end in .onnx' % args.output)
    check_writable_dir(os.path.dirname(args.output), '--output folder')
    prefix = checkpoint_prefix(args.prefix)
    if args.int8_calibration:
        model = onnx_model_of(prefix, args.epoch, args.batch_size)
        crops = calibration_crops(args.int8_calibration,
                                  args.calibration_faces or DEFAULT_CALIBRATION_FACES,
                                  input_size=model_input_size(model))
        save_quantized(model, crops, args.output)
    else:
        export_onnx(prefix, args.epoch, args.output, args.batch_size)
    kind = 'int8, calibrated on %d faces' % len(crops) if args.int8_calibration else 'float32'
    print('wrote %s (batch %s, %s)' % (args.output, args.batch_size or 'dynamic', kind))
    prior = shape_prior_for(args.prefix, args.epoch, 'auto')
    prior_path = shape_prior_path(args.output)
    if prior is not None:
        print('wrote %s (its shape prior)' % prior.save(prior_path))
    elif os.path.isfile(prior_path):
        _drop_stale_prior(prior_path, params_digest(prefix, args.epoch))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
