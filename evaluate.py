"""Measure NME on a test set exactly as the published table does (docs/protocol.md).

    python evaluate.py --dataset 300W --rec datasets/300w/val.rec     # the shipped model
    python evaluate.py --dataset ibug --prefix ./models/model-hg2d3-cab/model --epoch 0 --gpu -1
    python evaluate.py --dataset AFLW2000-3D --landmark-type 3d --prefix ... --use-essh
"""
import argparse
import os
import sys

import config
import essh
from console import check_range, configure_logging, run_cli
from data.codec import DECODE_METHODS
from data.geometry import ALIGN_SIZE, REFINE_MODES, TOP_SHIFT
from data.recordio import top_shift_for
from essh.loader import ESSH_DIR
from evaluation.protocol import NO_FACE, evaluate_rec
from evaluation.report import save_evaluation, summary_lines
from fileio import check_writable_dir
from inference import BACKENDS, context_for_gpu, load_heatmap_model
from inference.aligner import default_model
from inference.model import check_onnx_request
from inference.model_dir import shape_prior_for, shape_prior_path
from symbols.precision import DTYPES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='NME of a heatmap network on a test .rec')
    parser.add_argument('--dataset', default='ibug', choices=sorted(TOP_SHIFT),
                        help='test set: picks <data-dir>/<dataset>.rec and the crop top shift '
                             '(for records without a packed shift)')
    parser.add_argument('--prefix', default=None,
                        help='checkpoint prefix (<prefix>-symbol.json, <prefix>-NNNN.params), '
                             'a model directory (checkpoint and card) or a .onnx file (default: '
                             'the shipped model of the landmark type)')
    parser.add_argument('--backend', choices=BACKENDS, default='auto',
                        help='inference backend; auto: onnxruntime on the CPU when installed '
                        '(faster, same argmax landmarks), else mxnet')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint epoch')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id; -1 runs on the CPU')
    parser.add_argument('--landmark-type', choices=['2d', '3d'], default=None,
                        help='2d: floor + eye-centre NME; 3d: round + box NME '
                             '(default: 3d for AFLW2000-3D, else 2d)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--data-dir', default=None,
                        help='folder of the test .rec files (default: the data set preset\'s '
                             'data_dir, data_2d or data_3d)')
    source.add_argument('--rec', default=None, help='test .rec file (instead of --data-dir)')
    parser.add_argument('--use-essh', action='store_true',
                        help='crop around the detected face (--detector) instead of the ground '
                             'truth; images without a detection are counted as misses')
    parser.add_argument('--detector', choices=['essh', 'mtcnn', 'haar'], default=None,
                        help='face detector of --use-essh: the original\'s ESSH (the default; '
                             'weights in --essh-dir), the bundled MTCNN, or OpenCV\'s Haar '
                             'cascade')
    parser.add_argument('--refine', nargs='?', choices=REFINE_MODES, default='none',
                        const='mean',
                        help='with --use-essh: predict again on the protocol crop of the '
                             'detection pass\'s landmarks, with --top-shift, and answer with '
                             'that second pass (second) or, as FaceAligner, the mean of both '
                             'passes after a five-point-aligned detection crop (mean, the '
                             'default of a bare --refine); docs/protocol.md §8.1')
    parser.add_argument('--tilt', type=float, default=0.0,
                        help='turn every ground-truth crop by this many degrees about its '
                             'centre after the alignment (not the original\'s): accuracy on '
                             'in-plane rotation that no alignment removed')
    parser.add_argument('--essh-dir', default=None,
                        help='ESSH checkpoint folder of --use-essh --detector essh (default '
                             '%s)' % ESSH_DIR)
    parser.add_argument('--decode', choices=DECODE_METHODS, default='argmax',
                        help='heatmap decoding: the original integer argmax, a parabola fit '
                             '(subpixel), the DARK Taylor step (dark) or the mean near the '
                             'peak (expectation); docs/protocol.md §4, §9')
    parser.add_argument('--top-shift', type=int, default=None,
                        help='crop top shift (default: the shift the records were packed '
                             'with, which pack_rec.py notes in the .meta.json sidecar, else '
                             'the test set\'s preset, docs/protocol.md §3.1)')
    parser.add_argument('--flip-test', action='store_true',
                        help='average each crop\'s heatmaps with its mirror image\'s')
    parser.add_argument('--unfloored-gt', action='store_true',
                        help='score against the labels as they are, not floored to the crop '
                             'grid as the original protocol does (docs/protocol.md §9)')
    # Given without a PATH it holds True (no path typed on a command line can equal it).
    parser.add_argument('--shape-prior', nargs='?', const=True, metavar='PATH',
                        help='refine the decoded points with the shape prior fitted to the '
                             'checkpoint (data/shape_prior.py): the one beside it, or PATH; '
                             'not part of the original protocol')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--dtype', choices=DTYPES, default='float32',
                        help='bf16: run the network in bfloat16 mixed precision (mxnet backend, '
                             'CPU with avx512_bf16/amx_bf16)')
    parser.add_argument('--output', default=None,
                        help='folder for results JSON and CED plot (default outputs/eval)')
    return parser.parse_args(argv)


def default_rec_path(dataset, data_dir=None):
    """Where the original kept its test sets: data_2d/<name>.rec, data_3d/AFLW2000-3D.rec."""
    if data_dir is None:
        preset = 'i3d' if dataset == 'AFLW2000-3D' else 'i2d'
        data_dir = config.DATASETS[preset]['data_dir']
    return os.path.join(data_dir, dataset + '.rec')


def check_args(args):
    """Refuse out-of-range options up front, naming the allowed range. The top shift raises
    the box top inside the 384 px aligned image (data.geometry.ALIGN_SIZE) and stops at its
    edge, so shifts beyond 384 mean the same as 384; negative ones cut into the face."""
    check_range('--batch-size', args.batch_size, minimum=1)
    check_range('--epoch', args.epoch, minimum=0)
    check_range('--top-shift', args.top_shift, minimum=0, maximum=ALIGN_SIZE)
    if args.refine != 'none' and not args.use_essh:
        raise ValueError('--refine refines a detection crop; it needs --use-essh')
    if args.detector is not None and not args.use_essh:
        raise ValueError('--detector picks the face detector of --use-essh; it needs --use-essh')
    if args.essh_dir is not None and (args.detector or 'essh') != 'essh':
        raise ValueError('--essh-dir holds the ESSH detector\'s weights; it needs --detector '
                         'essh (not %s)' % args.detector)
    if args.essh_dir is not None and not args.use_essh:
        raise ValueError('--essh-dir holds the ESSH detector\'s weights; it needs --use-essh')
    check_onnx_request(args.prefix, args.epoch, args.backend)
    check_range('--tilt', args.tilt, minimum=-180, maximum=180)
    if args.tilt and args.use_essh:
        raise ValueError('--tilt turns the ground-truth crop; it cannot be combined with '
                         '--use-essh')


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    check_args(args)
    landmark_type = args.landmark_type or ('3d' if args.dataset == 'AFLW2000-3D' else '2d')
    rec_path = args.rec or default_rec_path(args.dataset, args.data_dir)
    output = args.output or os.path.join('outputs', 'eval')
    check_writable_dir(output, '--output folder')
    ctx = context_for_gpu(args.gpu)
    prefix = args.prefix or default_model(landmark_type)
    prior = None
    if args.shape_prior:
        prior = shape_prior_for(prefix, args.epoch, shape_prior_path(prefix)
                                if args.shape_prior is True else args.shape_prior)
    model = load_heatmap_model(prefix, args.epoch, args.backend, ctx=ctx,
                               batch_size=args.batch_size, flip_test=args.flip_test,
                               dtype=args.dtype)
    detector = None
    if args.use_essh:
        detector = essh.load_detector(args.detector or 'essh', args.essh_dir, ctx=ctx)
    top_shift = (top_shift_for(rec_path, preset=TOP_SHIFT[args.dataset])
                 if args.top_shift is None else args.top_shift)
    result = evaluate_rec(model, rec_path, args.dataset, landmark_type, top_shift,
                          decode=args.decode, batch_size=args.batch_size, detector=detector,
                          floor_ground_truth=not args.unfloored_gt, refine=args.refine,
                          tilt=args.tilt, shape_prior=prior)
    if not result.record_ids:
        # evaluate_rec refuses a test set it could score nothing of but for the detector's
        # misses; those leave no NME either, and writing them would replace earlier results.
        misses = sum(why == NO_FACE for _, why in result.skipped)
        raise ValueError('%s: no record could be scored (%d skipped, %d of them with no face '
                         'found by the %s detector); nothing written to %s'
                         % (rec_path, len(result.skipped), misses, result.detector, output))
    # The results file says what was measured: runs with other flags write the same name.
    result.model = '%s,%d' % (prefix, args.epoch)
    # The numbers first: they survive an output folder that cannot be written.
    print('\n'.join(summary_lines(result)))
    paths = save_evaluation(result, output)
    for kind, path in sorted(paths.items()):
        print('wrote %s: %s' % (kind, path))
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
