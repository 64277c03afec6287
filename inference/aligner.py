"""Face alignment on arbitrary photos: detect faces, crop each, predict 68 landmarks; and
following a face through video frames."""
import os
from dataclasses import dataclass, replace

import numpy as np

import essh
from essh.boxes import box_overlaps
from console import check_number
from data.geometry import (ALIGN_SIZE, DETECTION_THRESHOLD, TOP_SHIFT, compose_affine,
                           crop_detected_face, crop_to_image, refine_mode, refinement_answer,
                           refinement_crop)
from data.images import to_bgr8
from data.landmarks import NUM_LANDMARKS
from data.shape_prior import ShapePrior, decode_landmarks

from .model import load_heatmap_model
from .model_dir import PREFIX_NAME, card_landmark_type, is_model_dir, shape_prior_for

_MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models')
# The models this repository ships, per landmark type; what FaceAligner(), test.py and
# evaluate.py use by default. '2d': 300-W convention (jaw on the visible silhouette); '3d':
# AFLW2000-3D convention (projected 3D points, the occluded jaw side included).
# Model directories (inference.model_dir): each checkpoint ships with its card.
DEFAULT_MODEL_DIRS = {'2d': os.path.join(_MODELS_DIR, 'hg1d4-resnet-m025-300w'),
                      '3d': os.path.join(_MODELS_DIR, 'hg1d4-resnet-m025-3d')}
DEFAULT_MODELS = {kind: os.path.join(folder, PREFIX_NAME)
                  for kind, folder in DEFAULT_MODEL_DIRS.items()}
DEFAULT_MODEL = DEFAULT_MODELS['2d']
# The box top shift each shipped model's training records were laid out with (the 300W and
# AFLW2000-3D protocols): the refinement pass crops with it.
REFINE_TOP_SHIFTS = {'2d': TOP_SHIFT['300W'], '3d': TOP_SHIFT['AFLW2000-3D']}


def check_landmark_type(landmark_type):
    """ValueError unless `landmark_type` is '2d' or '3d'."""
    # Looked up in a tuple, so that an unhashable value is refused the same way.
    if landmark_type not in tuple(DEFAULT_MODEL_DIRS):
        raise ValueError('unknown landmark type %r; valid: %s'
                         % (landmark_type, ', '.join(sorted(DEFAULT_MODEL_DIRS))))


def default_model(landmark_type):
    """Model directory of the shipped model of `landmark_type` ('2d' or '3d'), so that loading
    it checks its card."""
    check_landmark_type(landmark_type)
    return DEFAULT_MODEL_DIRS[landmark_type]


def model_landmark_type(prefix, landmark_type=None):
    """The landmark type of model `prefix`: the one its card states when it is a model directory
    whose card says (inference.model_dir.card_landmark_type), which an explicit
    `landmark_type` must match; else `landmark_type`, else '2d'."""
    if landmark_type is not None:
        check_landmark_type(landmark_type)
    stated = card_landmark_type(prefix) if is_model_dir(prefix) else None
    if landmark_type is not None and stated not in (None, landmark_type):
        raise ValueError('%s: its card states %s landmarks, not landmark_type %r'
                         % (prefix, stated.upper(), landmark_type))
    return landmark_type or stated or '2d'


def image_iterator(images, name):
    """An iterator over `images`, an iterable of images; TypeError naming the argument `name`
    for one image array (iterating it would read each pixel row as a grey image) or for
    anything that is not iterable."""
    if isinstance(images, np.ndarray):
        raise TypeError('%s must be an iterable of images, got one array of shape %s (pass '
                        '[image] for one image, list(array) for a stack of images)'
                        % (name, images.shape))
    try:
        return iter(images)
    except TypeError:
        raise TypeError('%s must be an iterable of images, got %s'
                        % (name, type(images).__name__)) from None


def check_detector(detector, essh_dir):
    """FaceAligner's `detector` and `essh_dir`, checked before anything is loaded: a name for
    essh.load_detector (which checks it) or an object with a callable `.detect`; `essh_dir`,
    the ESSH weights, only for ESSH (None or 'essh')."""
    if essh_dir is not None and not (detector is None or detector == 'essh'):
        raise ValueError('essh_dir holds the ESSH detector\'s weights; it needs detector '
                         '\'essh\' (not %s)' % (repr(detector) if isinstance(detector, str)
                                                 else 'a detector of type %s'
                                                 % type(detector).__name__))
    if detector is not None and not isinstance(detector, str) \
            and not callable(getattr(detector, 'detect', None)):
        raise TypeError('detector must be a name (%s) or an object with a '
                        '.detect(image_bgr, threshold) method, got type %s'
                        % (', '.join(essh.DETECTORS), type(detector).__name__))


def check_shape_prior_setting(setting):
    """TypeError unless `setting` is what model_dir.shape_prior_for takes: 'auto', 'off' (or
    None, False), a path or a ShapePrior."""
    if not (setting is None or setting is False
            or isinstance(setting, (str, os.PathLike, ShapePrior))):
        raise TypeError('shape_prior must be \'auto\', \'off\', a shape-prior.npz path or a '
                        'ShapePrior, got %r' % (setting,))


# Tracking defaults (FaceAligner.track, test.py on videos): the detector runs at least every 30
# frames (about a second of video), and whenever a tracked crop's peak confidence falls below
# 0.45: with the shipped model (version 11), the faces of the first 120 300-W HELEN test
# photos scored 0.58 to 0.83 and 5.0% of their crops moved one face width sideways 0.45 or
# more (15.0% at 0.35, version 1's threshold); scripts/confidence_check.py measures it.
DEFAULT_REDETECT_EVERY = 30
DEFAULT_MIN_CONFIDENCE = 0.45
# The second detection, on the five-point-aligned image, must overlap the first detection's
# box mapped there by at least this IoU, else the mapped box is cropped. The original took the
# face nearest the aligned image's centre, which is sometimes a small patch of the same face.
# With MTCNN, 2 of 198 AFLW2000-3D validation photos got one (IoU under 0.3); one of them then
# had collapsed landmarks (3D model: 32.1% NME, 8.3% with this rule). On the 300-W validation
# and HELEN test photos the face it chose had IoU 0.5 or more in every photo (median 0.93 and
# 0.84), so this rule changes nothing there.
REDETECTION_MIN_IOU = 0.5
# Frame rate assumed when the caller gives none: the One-Euro cutoffs are in Hz.
DEFAULT_FPS = 25.0


def overlapping_redetection(faces, mapped_box):
    """The face of the second detection that overlaps `mapped_box` (the first detection's box
    mapped into the aligned image) most, when that IoU is at least REDETECTION_MIN_IOU; else
    None, and the mapped box is cropped (data.geometry.crop_detected_face)."""
    if not faces:
        return None
    overlaps = box_overlaps(np.array([face.box[:4] for face in faces], dtype=np.float64),
                            np.asarray(mapped_box, dtype=np.float64)[None, :4])[:, 0]
    best = int(np.argmax(overlaps))
    return faces[best] if overlaps[best] >= REDETECTION_MIN_IOU else None


@dataclass
class AlignedFace:
    """One face: detector box (x1, y1, x2, y2) and score, 68 (x, y) landmarks in the original
    image, the BGR crop the network saw last (input size x input size; the refinement crop
    when there was one) and `crop_transform`, the 2 x 3 map from image to crop pixels.

    `confidence`: that crop's heatmap peak confidence in 0..1 (data.codec.peak_confidence).
    `detector_points`: the detector's five (x, y) points (eyes, nose, mouth corners), or None
    when it gives none (Haar) or did not run on this frame (a tracked video frame).
    `tracked`: True for a video frame cropped from the previous frame's landmarks rather than
    from a detection (FaceAligner.track); its `box` is then the landmarks' bounding box and its
    `score` that of the track's latest detection.
    """
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    crop: np.ndarray
    crop_transform: np.ndarray
    confidence: float
    detector_points: np.ndarray = None
    tracked: bool = False

    def to_dict(self):
        points = self.detector_points
        return {'box': [float(v) for v in self.box], 'score': float(self.score),
                'landmarks': np.round(self.landmarks, 2).tolist(),
                'detector_points': None if points is None else np.round(points, 2).tolist(),
                'confidence': round(float(self.confidence), 4), 'tracked': self.tracked}


class FaceAligner:
    """`FaceAligner(prefix, epoch).get_landmarks(image)` -> list of AlignedFace; `prefix`
    defaults to the shipped model of `landmark_type` ('2d': 300-W jaw on the silhouette,
    '3d': AFLW2000-3D projected 3D points; DEFAULT_MODELS). `track(frames)` follows a face
    through video frames.

    `landmark_type` None (default) is the one the card of a model directory `prefix` states,
    else '2d' (model_landmark_type); a stated type must not be contradicted.

    `backend` 'mxnet' runs the checkpoint on `ctx` (an mx.Context, default CPU);
    'onnxruntime' runs it with onnxruntime on the CPU (`prefix` may then be an exported
    `.onnx` file); 'auto' (default) picks onnxruntime on the CPU when it is installed
    (inference.model.resolve_backend). `prefix` may also be a model directory (checkpoint and
    card, inference.model_dir). `decode` 'subpixel' refines each peak at heatmap resolution;
    'argmax' is the original's integer-pixel decoding (slower: 68 resizes per face). `detector` is
    anything with `.detect(image_bgr, threshold)` returning essh.Face-like objects, or a name
    for essh.load_detector ('mtcnn', 'essh', 'haar'); by default the bundled MTCNN, or ESSH
    when `essh_dir` (its checkpoint folder, also where 'essh' looks) is given.
    `flip_test` averages each face's maps with those of its mirror image (FlipTest).
    `refine` predicts a second time on the protocol crop of the first pass's landmarks (the
    five-point alignment and top-shifted box that training crops use, with `refine_top_shift`),
    so the network sees the geometry it was trained on whatever box the detector gave;
    by default the shift of the landmark type's training records (REFINE_TOP_SHIFTS). Its
    answer (data.geometry.REFINE_MODES): 'mean' (default; True) the mean of both passes'
    landmarks after a five-point-aligned detection crop (MTCNN, ESSH), else the second pass's;
    'second' the second pass's; 'none' (False) one pass only.
    `dtype` 'bf16' runs the landmark network in bfloat16 mixed precision (mxnet backend, CPU
    with avx512_bf16/amx_bf16; the detector stays float32).
    `shape_prior` refines every pass's decoded points with a Gaussian shape model
    (data.shape_prior): 'auto' (default) the one fitted to this checkpoint when it lies beside
    it (both shipped models have one), 'off', a `shape-prior.npz` path, or a ShapePrior.
    """

    def __init__(self, prefix=None, epoch=0, ctx=None, detector=None, batch_size=16,
                 threshold=DETECTION_THRESHOLD, decode='subpixel', essh_dir=None,
                 backend='auto', flip_test=False, refine='mean', refine_top_shift=None,
                 landmark_type=None, dtype='float32', shape_prior='auto'):
        # Every option is checked first: loading the network and the detector takes seconds.
        if prefix is None:
            prefix = default_model(landmark_type or '2d')
        elif isinstance(prefix, str) and not prefix.strip():
            raise ValueError('prefix is empty: give a checkpoint prefix, a model directory or '
                             'a .onnx file, or None for the shipped model')
        self.landmark_type = model_landmark_type(prefix, landmark_type)
        check_number('batch_size', batch_size, integer=True, minimum=1)
        # The bundled detectors' scores are probabilities (MTCNN, ESSH: softmax; Haar: its
        # stage weight through a logistic), so every detector shares the 0..1 scale.
        check_number('threshold', threshold, minimum=0, maximum=1)
        if not isinstance(flip_test, (bool, np.bool_)):
            raise TypeError('flip_test must be True or False, got %r' % (flip_test,))
        self.refine = refine_mode(refine)
        if refine_top_shift is None:
            refine_top_shift = REFINE_TOP_SHIFTS[self.landmark_type]
        # As evaluate.py --top-shift: the shift raises the box top inside the aligned image,
        # so it lies in 0..ALIGN_SIZE.
        check_number('refine_top_shift', refine_top_shift, integer=True, minimum=0,
                     maximum=ALIGN_SIZE)
        self.refine_top_shift = refine_top_shift
        check_shape_prior_setting(shape_prior)
        check_detector(detector, essh_dir)
        self.threshold = threshold
        self.model = load_heatmap_model(prefix, epoch, backend=backend, ctx=ctx,
                                        batch_size=batch_size, flip_test=flip_test, dtype=dtype)
        # A graph that does not name its loss is read as the original's L2 maps.
        self.codec = self.model.codec(decode)
        self.shape_prior = shape_prior_for(prefix, epoch, shape_prior)
        if detector is None:
            detector = 'mtcnn' if essh_dir is None else 'essh'
        # The detector after the network: dtype bf16 must be set up before other MXNet work.
        self.detector = (essh.load_detector(detector, essh_dir, ctx=ctx)
                         if isinstance(detector, str) else detector)

    def get_landmarks(self, image):
        """Faces of one image (grey, BGR or BGRA; 8/16-bit or float); [] when there is none."""
        return self.get_landmarks_batch([image])[0]

    def get_landmarks_batch(self, images):
        """One list of AlignedFace per image of `images` (any iterable of images, read once);
        all faces go through the network together."""
        bgr_images = [to_bgr8(image) for image in image_iterator(images, 'images')]
        detections = [(index, face) for index, bgr in enumerate(bgr_images)
                      for face in self._detect(bgr)]
        results = [[] for _ in bgr_images]
        for (index, _), face in zip(detections, self._align(bgr_images, detections)):
            results[index].append(face)
        return results

    def _detect(self, bgr):
        """The detector's faces in `bgr`, as a list; TypeError naming the detector's type when
        it answers something else than an iterable of faces (None, say)."""
        faces = self.detector.detect(bgr, threshold=self.threshold)
        try:
            return list(faces)
        except TypeError:
            raise TypeError('%s.detect returned %s, not a list of faces (an empty list when '
                            'there is none)' % (type(self.detector).__name__,
                                                'None' if faces is None
                                                else 'type %s' % type(faces).__name__)) from None

    def _align(self, bgr_images, detections):
        """AlignedFace of each (image index, detected face): the detection crop, then the
        refinement pass; all faces of a pass go through the network together."""
        if not detections:
            return []
        crops = [crop_detected_face(bgr_images[index], face, self.detector, self.threshold,
                                    self.codec.input_size,
                                    choose_redetection=overlapping_redetection)
                 for index, face in detections]
        landmarks, confidences = self._landmarks(crops)
        if self.refine != 'none':
            again = [self._refine_crop(bgr_images[index], points)
                     for (index, _), points in zip(detections, landmarks)]
            redo = [i for i, crop in enumerate(again) if crop is not None]
            if redo:
                points, scores = self._landmarks([again[i] for i in redo])
                for i, refined, score in zip(redo, points, scores):
                    landmarks[i] = refinement_answer(self.refine, landmarks[i], refined,
                                                     crops[i][1])
                    crops[i], confidences[i] = again[i], score
        return [AlignedFace(box=np.asarray(face.box, dtype=np.float64)[:4],
                            score=float(face.score), landmarks=points, crop=crop,
                            crop_transform=compose_affine(m_align, m_crop),
                            detector_points=(None if face.points is None else
                                             np.asarray(face.points, dtype=np.float64)),
                            confidence=confidence)
                for (_, face), (crop, m_align, m_crop), points, confidence
                in zip(detections, crops, landmarks, confidences)]

    def track(self, frames, redetect_every=DEFAULT_REDETECT_EVERY,
              min_confidence=DEFAULT_MIN_CONFIDENCE, smoother=None, fps=DEFAULT_FPS):
        """Follow one face through `frames` (an iterable of images, as get_landmarks takes);
        an iterator of, per frame, [AlignedFace] or [] when there is no face. The options are
        checked here, before the first frame is read.

        A frame is cropped from the previous frame's landmarks (the refinement pass's protocol
        crop) and goes through the network once (`tracked` True). The detector runs instead
        (detection crop and refinement, as get_landmarks) on the first frame, when the track
        was lost, when the tracked crop's peak confidence falls below `min_confidence` (0..1,
        data.codec.peak_confidence), and every `redetect_every` frames; when that scheduled
        detection finds nothing, the track goes on while its confidence holds.

        One face is followed: at the start the largest detected box; on a re-detection the
        detected face nearest the tracked one, so the track does not jump to another person.
        `smoother` (such as smoothing.OneEuroFilter; anything called as smoother(landmarks,
        seconds) with a reset()) smooths the landmarks over time, frames being 1 / `fps`
        seconds apart; it is reset when the track is lost. The next frame is still cropped
        from the unsmoothed landmarks, so smoothing never feeds back into tracking.
        """
        frames = image_iterator(frames, 'frames')
        check_number('redetect_every', redetect_every, integer=True, minimum=1)
        check_number('min_confidence', min_confidence, minimum=0, maximum=1)
        check_number('fps', fps, above=0)
        if smoother is not None and not (callable(smoother)
                                         and callable(getattr(smoother, 'reset', None))):
            raise TypeError('smoother must be called as smoother(landmarks, seconds) and have '
                            'a reset() method (such as inference.smoothing.OneEuroFilter), got '
                            'type %s' % type(smoother).__name__)
        return self._track(frames, redetect_every, min_confidence, smoother, fps)

    def _track(self, frames, redetect_every, min_confidence, smoother, fps):
        """The generator of track(), its options checked."""
        if smoother is not None:
            smoother.reset()
        previous, since_detection = None, 0
        for index, frame in enumerate(frames):
            bgr = to_bgr8(frame)
            due = previous is None or since_detection >= redetect_every
            face = None if due else self._follow(bgr, previous, min_confidence)
            if face is None:
                face = self._detect_one(bgr, previous)
                since_detection = 0
                if face is None and due and previous is not None:
                    face = self._follow(bgr, previous, min_confidence)
            since_detection += 1
            if face is None:
                previous = None
                if smoother is not None:
                    smoother.reset()
                yield []
                continue
            previous = face
            if smoother is not None:
                face = replace(face, landmarks=smoother(face.landmarks, index / fps))
            yield [face]

    def _detect_one(self, bgr, previous):
        """The AlignedFace of the one detected face to follow, or None when there is none."""
        faces = self._detect(bgr)
        if not faces:
            return None
        boxes = np.array([np.asarray(face.box, dtype=np.float64)[:4] for face in faces])
        if previous is None:
            choice = np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        else:
            centre = previous.landmarks.mean(axis=0)
            choice = np.argmin(np.square((boxes[:, :2] + boxes[:, 2:]) / 2 - centre).sum(axis=1))
        return self._align([bgr], [(0, faces[int(choice)])])[0]

    def _follow(self, bgr, previous, min_confidence):
        """The tracked AlignedFace of a frame cropped from the `previous` face's landmarks, or
        None when that crop is degenerate or its confidence is below `min_confidence`."""
        face = self.align_from(bgr, previous.landmarks, score=previous.score)
        if face is None or face.confidence < min_confidence:
            return None
        return face

    def align_from(self, image, landmarks, score=float('nan')):
        """The AlignedFace of `image` cropped from known (68, 2) `landmarks` (those of a nearby
        frame, or another tool's), with one pass of the network and no detector: the step
        that tracking repeats. None when the landmarks give a degenerate crop. Its `box` is
        the new landmarks' bounding box, its `score` the given one, `tracked` True (cropped
        from landmarks, not from a detection), and `confidence` tells whether a face was
        there (README, "Confidence"). Points farther outside the image than its width (in x)
        or height (in y) give no usable crop either: it would show only the border, and
        coordinates far beyond any image (1e20 and up) overflow the alignment's arithmetic.
        NaN or infinite points are refused."""
        try:
            landmarks = np.asarray(landmarks, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError('landmarks must be %d (x, y) points of numbers, got %s'
                            % (NUM_LANDMARKS, type(landmarks).__name__)) from None
        if landmarks.shape != (NUM_LANDMARKS, 2):
            raise ValueError('landmarks must be %d (x, y) points, got an array of shape %s'
                             % (NUM_LANDMARKS, landmarks.shape))
        if not np.isfinite(landmarks).all():
            raise ValueError('landmarks must be finite, got NaN or infinite coordinates')
        bgr = to_bgr8(image)
        size = np.array([bgr.shape[1], bgr.shape[0]], dtype=np.float64)
        # Within one image size of the image: -width <= x <= 2 width, likewise y.
        if (np.abs(landmarks - size / 2) > 1.5 * size).any():
            return None
        crop = self._refine_crop(bgr, landmarks)
        if crop is None:
            return None
        (points,), (confidence,) = self._landmarks([crop])
        _, m_align, m_crop = crop
        return AlignedFace(box=np.concatenate([points.min(axis=0), points.max(axis=0)]),
                           score=score, landmarks=points, crop=crop[0],
                           crop_transform=compose_affine(m_align, m_crop),
                           confidence=confidence, tracked=True)

    def _refine_crop(self, bgr, points):
        return refinement_crop(bgr, points, self.refine_top_shift, self.codec.input_size)

    def _landmarks(self, crops):
        """(image-pixel landmarks, peak confidences) of (crop, M_align, M_crop) triples, all
        in one forward."""
        maps = self.model.predict(np.stack([c[0] for c in crops]))
        points = decode_landmarks(self.codec, maps, self.shape_prior)
        landmarks = [crop_to_image(p, m_align, m_crop)
                     for p, (_, m_align, m_crop) in zip(points, crops)]
        return landmarks, [float(c) for c in self.codec.confidence(maps)]
