"""Face alignment demo: landmarks on images, folders of images and videos.

    python test.py --image photo.jpg --prefix ./models/model-hg2d3-cab/model --epoch 0 \
        --gpu -1 --output outputs/demo
    python test.py --image clip.mp4 --smooth      # a video: the face is tracked, then smoothed
"""
import argparse
import os
import sys

import cv2

from console import check_range, configure_logging, expected_error_message, run_cli
from essh.loader import ESSH_DIR
from fileio import check_writable_dir
from inference import BACKENDS, FaceAligner, context_for_gpu
from inference.aligner import DEFAULT_MIN_CONFIDENCE, DEFAULT_REDETECT_EVERY
from inference.demo import (VideoDamaged, VideoInterrupted, annotate_image, annotate_video,
                            output_names)
from inference.images import is_video, list_inputs
from inference.model import check_onnx_request
from inference.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF, OneEuroFilter
from symbols.precision import DTYPES

WINDOW = 'face alignment'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='detect faces and draw their 68 landmarks')
    parser.add_argument('--image', action='append', required=True,
                        help='image, video or folder of them (repeatable)')
    parser.add_argument('--landmark-type', choices=['2d', '3d'], default=None,
                        help='2d: 300-W convention (jaw on the visible silhouette); 3d: '
                             'AFLW2000-3D convention (projected 3D points, hidden jaw side '
                             'included). Picks the shipped model and the refinement crop; '
                             'default: the type the card of a model directory --prefix states, '
                             'else 2d')
    parser.add_argument('--prefix', default=None,
                        help='checkpoint prefix (<prefix>-symbol.json, <prefix>-NNNN.params); '
                             'a model directory (checkpoint and card) or a .onnx file; default: '
                             'the shipped model of --landmark-type')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint epoch')
    parser.add_argument('--backend', choices=BACKENDS, default='auto',
                        help='landmark network backend; auto: onnxruntime on the CPU when '
                             'installed (faster), else mxnet')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id; -1 runs on the CPU')
    parser.add_argument('--output', default=os.path.join('outputs', 'demo'),
                        help='folder for annotated PNGs / videos and JSON results')
    parser.add_argument('--detector', choices=['mtcnn', 'essh', 'haar'], default='mtcnn',
                        help='face detector: the bundled MTCNN, the original\'s ESSH (weights '
                             'in --essh-dir) or OpenCV\'s Haar cascade (boxes only)')
    parser.add_argument('--essh-dir', default=None,
                        help='ESSH checkpoint folder, for --detector essh (default %s)'
                             % ESSH_DIR)
    parser.add_argument('--flip-test', action='store_true',
                        help='average each face with its mirror image (twice the network work)')
    parser.add_argument('--dtype', choices=DTYPES, default='float32',
                        help='bf16: run the landmark network in bfloat16 mixed precision (CPU '
                             'with avx512_bf16/amx_bf16)')
    parser.add_argument('--shape-prior', default='auto', metavar='auto|off|PATH',
                        help='refine the points with the shape prior fitted to the model '
                             '(auto: the one beside its checkpoint, if any; '
                             'data/shape_prior.py)')
    parser.add_argument('--show', action='store_true', help='also show results in a window')
    video = parser.add_argument_group(
        'videos', 'the face found in the first frame is followed: each frame is cropped from '
        'the previous frame\'s landmarks, and the detector runs again when needed')
    # The video options default to None (--smooth too), so that one given without a video
    # can be refused.
    video.add_argument('--redetect-every', type=int, metavar='N',
                       help='run the detector at least every N frames (default %s; 1 detects '
                            'in every frame)' % DEFAULT_REDETECT_EVERY)
    video.add_argument('--min-confidence', type=float, metavar='X',
                       help='run the detector when a tracked face\'s heatmap peak confidence '
                            '(0..1) falls below X (default %s)' % DEFAULT_MIN_CONFIDENCE)
    video.add_argument('--smooth', action='store_true', default=None,
                       help='smooth the landmarks over time with a One-Euro filter')
    video.add_argument('--smooth-min-cutoff', type=float, metavar='HZ',
                       help='with --smooth: cutoff frequency of a still face; lower removes '
                            'more jitter (default %s)' % DEFAULT_MIN_CUTOFF)
    video.add_argument('--smooth-beta', type=float, metavar='B',
                       help='with --smooth: how fast the cutoff rises with speed (per pixel '
                            'per second); higher lags less behind motion (default %s)'
                            % DEFAULT_BETA)
    return parser.parse_args(argv)


# test.py's options that only videos use.
VIDEO_FLAGS = ('--redetect-every', '--min-confidence', '--smooth', '--smooth-min-cutoff',
               '--smooth-beta')


def check_video_options(args, inputs):
    """Refuse video options when none of `inputs` is a video: they would be ignored."""
    given = [flag for flag in VIDEO_FLAGS
             if getattr(args, flag[2:].replace('-', '_')) is not None]
    if given and not any(is_video(path) for path in inputs):
        raise ValueError('%s given, but no input is a video (they apply to videos only)'
                         % ', '.join(given))


def tracking_options(args):
    """FaceAligner.track's keyword arguments from the video flags (checked)."""
    check_range('--redetect-every', args.redetect_every, minimum=1)
    check_range('--min-confidence', args.min_confidence, minimum=0, maximum=1)
    if not args.smooth:
        given = [flag for flag, value in (('--smooth-min-cutoff', args.smooth_min_cutoff),
                                          ('--smooth-beta', args.smooth_beta))
                 if value is not None]
        if given:
            raise ValueError('%s given without --smooth' % ' and '.join(given))
        smoother = None
    else:
        check_range('--smooth-min-cutoff', args.smooth_min_cutoff, above=0)
        check_range('--smooth-beta', args.smooth_beta, minimum=0)
        smoother = OneEuroFilter(
            DEFAULT_MIN_CUTOFF if args.smooth_min_cutoff is None else args.smooth_min_cutoff,
            DEFAULT_BETA if args.smooth_beta is None else args.smooth_beta)
    return {'redetect_every': (DEFAULT_REDETECT_EVERY if args.redetect_every is None
                               else args.redetect_every),
            'min_confidence': (DEFAULT_MIN_CONFIDENCE if args.min_confidence is None
                               else args.min_confidence),
            'smoother': smoother}


def check_model_options(args):
    """Refuse options that would be parsed and then ignored (an epoch or the mxnet backend
    for an exported .onnx --prefix; --essh-dir without the ESSH detector)."""
    check_range('--epoch', args.epoch, minimum=0)
    check_onnx_request(args.prefix, args.epoch, args.backend)
    if args.essh_dir is not None and args.detector != 'essh':
        raise ValueError('--essh-dir holds the ESSH detector\'s weights; it needs --detector '
                         'essh (not %s)' % args.detector)


def _display_available():
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _show(image, wait_ms):
    cv2.imshow(WINDOW, image)
    cv2.waitKey(wait_ms)


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    check_model_options(args)
    tracking = tracking_options(args)
    show = args.show and _display_available()
    if args.show and not show:
        print('cannot show results: no display (DISPLAY is not set); see %s' % args.output)
    inputs = list_inputs(args.image)
    if not inputs:
        raise ValueError('no images or videos in %s' % ', '.join(args.image))
    check_video_options(args, inputs)
    check_writable_dir(args.output, '--output folder')
    aligner = FaceAligner(args.prefix, args.epoch, ctx=context_for_gpu(args.gpu),
                          detector=args.detector, essh_dir=args.essh_dir,
                          backend=args.backend, flip_test=args.flip_test, dtype=args.dtype,
                          landmark_type=args.landmark_type, shape_prior=args.shape_prior)
    skipped = unwritten = 0
    for path, name in zip(inputs, output_names(inputs)):
        try:
            annotate(aligner, path, name, args.output, show, tracking)
        except VideoDamaged as exc:
            print('error: %s' % exc, file=sys.stderr)
            skipped += 1
        except ValueError as exc:
            print('skipped: %s' % exc, file=sys.stderr)
            skipped += 1
        except OSError as exc:
            # This input's results could not be saved (the output folder was probed writable
            # at the start): the other inputs still run, and the exit status tells.
            print('skipped: %s: results not written (%s)' % (path, expected_error_message(exc)),
                  file=sys.stderr)
            skipped += 1
            unwritten += 1
        except VideoInterrupted as stop:
            print('interrupted: kept the %d frames done of %s -> %s, %s'
                  % (stop.frames, path, stop.video_path, stop.jsonl_path), file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print('interrupted during %s' % path, file=sys.stderr)
            return 130
    print('done: %d input(s), %d skipped%s' % (
        len(inputs), skipped, ', %d of them with results not written' % unwritten
        if unwritten else ''))
    return 0 if skipped < len(inputs) and not unwritten else 2


def annotate(aligner, path, name, output, show, tracking):
    """Run one image or video (tracked with `tracking`, FaceAligner.track's options) and
    print where its results went."""
    if is_video(path):
        on_frame = (lambda frame: _show(frame, 1)) if show else None
        jsonl_path, video_path, frames = annotate_video(aligner, path, output, on_frame,
                                                        name=name, tracking=tracking)
        print('%s: %d frames -> %s, %s' % (path, frames, video_path, jsonl_path))
        return
    png_path, json_path, faces = annotate_image(aligner, path, output, name=name)
    print('%s: %d face(s) -> %s, %s' % (path, len(faces), png_path, json_path))
    if show:
        _show(cv2.imread(png_path), 0)


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
