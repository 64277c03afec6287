"""Export a checkpoint's heatmap network (`heatmap_output`) to ONNX.

    python scripts/export_onnx.py --prefix models/model-hg2d3-cab/model --epoch 0 \
        --output model.onnx

Input `data`: N x 3 x 128 x 128 RGB, 0..255 floats (the graph normalises); output: N x 68 x
64 x 64 heatmaps. N is free unless --batch-size fixes it. Run the file with
`FaceAligner(path, backend='onnxruntime')` or inference.onnx_model.OnnxHeatmapModel.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from inference.onnx_export import export_onnx  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefix', required=True,
                        help='checkpoint prefix (<prefix>-symbol.json, <prefix>-NNNN.params)')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint epoch')
    parser.add_argument('--output', required=True, help='.onnx file to write')
    parser.add_argument('--batch-size', type=int,
                        help='fixed batch size (default: dynamic batch dimension)')
    args = parser.parse_args(argv)
    try:
        path = export_onnx(args.prefix, args.epoch, args.output, args.batch_size)
    except ValueError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    print('wrote %s (batch %s)' % (path, args.batch_size or 'dynamic'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
