r"""Choose the MTCNN second chance (essh.mtcnn: RETRY_THRESHOLDS, RETRY_MIN_SIZE) by weighing
faces found against false alarms.

--faces: photos with one annotated face each (folders of .pts + image, or .rec test sets).
The first search (the default cuts, no second chance) runs on each; for each photo where it
keeps no face, each candidate second search runs, and it "finds" the face when one of its
boxes has its centre in the annotated landmark box.
--blanked: photos whose annotated face is painted grey (its landmark box widened by 30% of its
width to each side, 60% of its height upwards and 30% downwards), so that they hold no face
the annotation knows of. A candidate "fires" on a photo where the first search found nothing
and it finds anything.

    python scripts/mtcnn_second_chance.py --faces datasets/aflw2000-3d-dev/train.rec \\
        --blanked datasets/300w/train.rec datasets/aflw2000-3d-dev/train.rec --limit 700

--limit applies to --blanked only. Use training photos: the setting chosen here decides what
the detector finds on every test set.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import mxnet as mx  # noqa: E402

from console import check_range, progress, run_cli  # noqa: E402
from essh.mtcnn import RETRY_MIN_SIZE, RETRY_THRESHOLDS, MTCNNDetector  # noqa: E402
from scripts.end_to_end import matching_box, photo_faces  # noqa: E402

DEFAULT_SETTINGS = ('0.6,0.7,0.6@20', '0.5,0.5,0.5@40', '0.4,0.4,0.4@60', '0.3,0.3,0.3@60',
                    '0.4,0.4,0.4@80', '0.3,0.3,0.3@80',
                    '%s@%d' % (','.join('%g' % cut for cut in RETRY_THRESHOLDS), RETRY_MIN_SIZE))
# The grey band around the annotated face: sideways, upwards (hair, forehead), downwards.
BLANK_SIDE, BLANK_UP, BLANK_DOWN = 0.3, 0.6, 0.3


def parse_setting(text):
    """'P,R,O@SIZE' -> ((P, R, O), SIZE); ValueError naming the text when it is malformed."""
    try:
        cuts, size = text.split('@')
        cuts = tuple(float(cut) for cut in cuts.split(','))
        size = float(size)
    except ValueError:
        raise ValueError('--settings: %r is not P,R,O@SIZE (e.g. 0.3,0.3,0.4@80)' % text) \
            from None
    if len(cuts) != 3 or not all(0 <= cut <= 1 for cut in cuts) or not size > 0:
        raise ValueError('--settings: %r needs three cuts in 0..1 and a size > 0' % text)
    return cuts, size


def blank_face(image, points):
    """A copy of `image` with the annotated face painted grey (see the module docstring)."""
    (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
    width, height = x2 - x1, y2 - y1
    top, bottom = max(0, int(y1 - BLANK_UP * height)), max(0, int(y2 + BLANK_DOWN * height))
    left, right = max(0, int(x1 - BLANK_SIDE * width)), max(0, int(x2 + BLANK_SIDE * width))
    blanked = image.copy()
    blanked[top:bottom, left:right] = 127
    return blanked


def photos(sources, skipped, limit=None):
    """(image, points) of each readable photo of `sources` (the first `limit` of each); the
    unreadable ones are appended to `skipped` with their reason."""
    for source in sources:
        for name, load in photo_faces(source)[:limit]:
            try:
                yield load()
            except ValueError as exc:
                skipped.append('%s: %s: %s' % (source, name, exc))


def search_counts(first, seconds, sources, skipped, blanked, limit=None):
    """(photos seen, photos where `first` keeps no face, for each of `seconds` how many of
    those it finds the annotated face in, or with `blanked`, fires on)."""
    seen, missed, counts = 0, 0, [0] * len(seconds)
    for image, points in progress(photos(sources, skipped, limit), desc='photos', unit='photo'):
        seen += 1
        if blanked:
            image = blank_face(image, points)
        if first.detect(image):
            continue
        missed += 1
        for index, second in enumerate(seconds):
            faces = second.detect(image)
            counts[index] += (bool(faces) if blanked else
                              matching_box([face.box for face in faces], points) is not None)
    return seen, missed, counts


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--faces', nargs='+', required=True,
                        help='photos with one annotated face each (folder or .rec)')
    parser.add_argument('--blanked', nargs='+', default=[],
                        help='photos to blank the annotated face of (folder or .rec)')
    parser.add_argument('--limit', type=int, default=None,
                        help='use the first N photos of each --blanked source')
    parser.add_argument('--settings', nargs='+', default=list(DEFAULT_SETTINGS),
                        help='second searches to compare, as P,R,O@SIZE (default: '
                             '%(default)s; the last is the shipped one)')
    args = parser.parse_args(argv)
    check_range('--limit', args.limit, minimum=1)
    settings = [parse_setting(text) for text in args.settings]
    first = MTCNNDetector(ctx=mx.cpu(), retry_thresholds=None)
    seconds = [MTCNNDetector(ctx=mx.cpu(), thresholds=cuts, min_size=size,
                             retry_thresholds=None) for cuts, size in settings]
    columns = [('faces', args.faces, False)] + [
        ('blanked %s' % source, [source], True) for source in args.blanked]
    header, rows = ['second search: cuts (P, R, O) @ smallest face'], [[] for _ in settings]
    skipped = []
    for title, sources, blanked in columns:
        seen, missed, counts = search_counts(first, seconds, sources, skipped, blanked,
                                             args.limit if blanked else None)
        header.append('%s: %s (of %d; first search %s %d of %d)'
                      % (title, 'fires on' if blanked else 'finds', missed,
                         'fired on' if blanked else 'missed',
                         seen - missed if blanked else missed, seen))
        for row, count in zip(rows, counts):
            row.append(count)
    print('| %s |' % ' | '.join(header))
    print('|%s' % ('---|' * len(header)))
    for text, row in zip(args.settings, rows):
        print('| %s | %s |' % (text, ' | '.join(str(count) for count in row)))
    for line in skipped:
        print('skipped %s' % line)
    return 0


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
