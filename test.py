"""Face alignment demo: landmarks on images, folders of images and videos.

    python test.py --image photo.jpg --prefix ./models/model-hg2d3-cab/model --epoch 0 \
        --gpu -1 --output outputs/demo
"""
import argparse
import os
import sys

import cv2

from console import check_range, configure_logging, run_cli
from fileio import check_writable_dir
from inference import FaceAligner, context_for_gpu
from inference.demo import VideoInterrupted, annotate_image, annotate_video, output_names
from inference.images import is_video, list_inputs

WINDOW = 'face alignment'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='detect faces and draw their 68 landmarks')
    parser.add_argument('--image', action='append', required=True,
                        help='image, video or folder of them (repeatable)')
    parser.add_argument('--landmark-type', choices=['2d', '3d'], default='2d',
                        help='2d: 300-W convention (jaw on the visible silhouette); 3d: '
                             'AFLW2000-3D convention (projected 3D points, hidden jaw side '
                             'included). Picks the shipped model and the refinement crop')
    parser.add_argument('--prefix', default=None,
                        help='checkpoint prefix (<prefix>-symbol.json, <prefix>-NNNN.params); '
                             'default: the shipped model of --landmark-type')
    parser.add_argument('--epoch', type=int, default=0, help='checkpoint epoch')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id; -1 runs on the CPU')
    parser.add_argument('--output', default=os.path.join('outputs', 'demo'),
                        help='folder for annotated PNGs / videos and JSON results')
    parser.add_argument('--detector', choices=['mtcnn', 'essh', 'haar'], default='mtcnn',
                        help='face detector: the bundled MTCNN, the original\'s ESSH (weights '
                             'in --essh-dir) or OpenCV\'s Haar cascade (boxes only)')
    parser.add_argument('--essh-dir', default='essh-model',
                        help='ESSH checkpoint folder, for --detector essh')
    parser.add_argument('--flip-test', action='store_true',
                        help='average each face with its mirror image (twice the network work)')
    parser.add_argument('--show', action='store_true', help='also show results in a window')
    return parser.parse_args(argv)


def _display_available():
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _show(image, wait_ms):
    cv2.imshow(WINDOW, image)
    cv2.waitKey(wait_ms)


def _main(argv=None):
    args = parse_args(argv)
    configure_logging()
    check_range('--epoch', args.epoch, minimum=0)
    show = args.show and _display_available()
    if args.show and not show:
        print('cannot show results: no display (DISPLAY is not set); see %s' % args.output)
    inputs = list_inputs(args.image)
    if not inputs:
        raise ValueError('no images or videos in %s' % ', '.join(args.image))
    check_writable_dir(args.output, '--output folder')
    aligner = FaceAligner(args.prefix, args.epoch, ctx=context_for_gpu(args.gpu),
                          detector=args.detector, essh_dir=args.essh_dir,
                          flip_test=args.flip_test, landmark_type=args.landmark_type)
    skipped = 0
    for path, name in zip(inputs, output_names(inputs)):
        try:
            annotate(aligner, path, name, args.output, show)
        except ValueError as exc:
            print('skipped: %s' % exc, file=sys.stderr)
            skipped += 1
        except VideoInterrupted as stop:
            print('interrupted: kept the %d frames done of %s -> %s, %s'
                  % (stop.frames, path, stop.video_path, stop.jsonl_path), file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print('interrupted during %s' % path, file=sys.stderr)
            return 130
    print('done: %d input(s), %d skipped' % (len(inputs), skipped))
    return 0 if skipped < len(inputs) else 2


def annotate(aligner, path, name, output, show):
    """Run one image or video and print where its results went."""
    if is_video(path):
        on_frame = (lambda frame: _show(frame, 1)) if show else None
        jsonl_path, video_path, frames = annotate_video(aligner, path, output, on_frame,
                                                        name=name)
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
