"""A statistical shape prior on the decoded landmarks (docs/protocol.md §4.5).

The network places each of the 68 points on its own heatmap; nothing ties them into one face.
Where a map is unsure (along the jaw's silhouette, under an occluder) its point drifts in ways
no face has. `ShapePrior.refine` takes the decoded points as a noisy measurement y of the true
shape and returns the posterior mean under a Gaussian model of real shapes (a point
distribution model, Cootes et al. 1995, used as the prior of a Bayesian estimate):

    x = mean + S (S + R)^-1 (y - mean)

in a frame where the 51 inner points (all but the jaw) are similarity-aligned to the mean
shape. S is the covariance of the training faces' ground truth in that frame; R is diagonal:
per coordinate, the model's mean squared error on its training faces, times `scale`, times
the point's heatmap variance (data.codec.peak_variances) relative to its typical variance
raised to `exponent`, so that a point whose map is wide on this face is trusted less. A fit
belongs to one checkpoint, whose weights' SHA-256 it records; `scale` and `exponent` are
chosen on validation faces (scripts/fit_shape_prior.py); inference.model_dir finds the prior
beside its checkpoint.
"""
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from fileio import atomic_write

from .geometry import invert_affine, similarity_transform, warp_points
from .landmarks import NUM_LANDMARKS, REGIONS

FILE_NAME = 'shape-prior.npz'
# The points that place the frame: the jaw's are the least certain, so they do not move it.
INNER = np.arange(REGIONS['jaw'][1] + 1, NUM_LANDMARKS)
PROCRUSTES_ROUNDS = 5
# The grid scripts/fit_shape_prior.py tries on the validation faces.
SCALES = (0.25, 0.35, 0.5, 0.75, 1.0)
EXPONENTS = (0.0, 1.0, 2.0, 3.0, 4.0)
_ARRAYS = {'mean': (NUM_LANDMARKS, 2), 'covariance': (2 * NUM_LANDMARKS, 2 * NUM_LANDMARKS),
           'noise': (2 * NUM_LANDMARKS,), 'typical_variance': (NUM_LANDMARKS,)}


@dataclass
class ShapePrior:
    """The Gaussian shape model and the measurement noise of one checkpoint (module doc)."""
    mean: np.ndarray            # (68, 2) mean shape: the frame
    covariance: np.ndarray      # (136, 136) of the ground truth in the frame
    noise: np.ndarray           # (136,) the model's mean squared error per coordinate
    typical_variance: np.ndarray  # (68,) mean heatmap variance per point, in the frame
    scale: float = 1.0
    exponent: float = 0.0
    params_sha256: str = ''     # of the checkpoint it was fitted to

    def refine(self, points, variances):
        """(N, 68, 2) decoded points and their (N, 68) heatmap variances, both in one frame
        per face (crop pixels) -> (N, 68, 2) posterior means in that frame. A face whose inner
        points coincide keeps its points."""
        points = np.asarray(points, dtype=np.float64)
        refined = points.copy()
        with _blas_controller().limit(limits=1, user_api='blas'):
            for index, (face, variance) in enumerate(zip(points, np.asarray(variances))):
                try:
                    to_frame = similarity_transform(face[INNER], self.mean[INNER])
                except ValueError:
                    continue
                relative = _in_frame(variance, to_frame) / self.typical_variance
                posterior = self._posterior(warp_points(face, to_frame).reshape(-1), relative)
                refined[index] = warp_points(posterior.reshape(-1, 2), invert_affine(to_frame))
        return refined

    def decode(self, codec, heatmaps):
        """codec.decode of (N, 68, h, w) maps, refined with the maps' variances."""
        return self.refine(codec.decode(heatmaps), codec.variances(heatmaps))

    def _posterior(self, measured, relative_variance):
        # A map that is one sharp cell would claim no noise at all.
        weight = np.maximum(relative_variance, 1e-3) ** self.exponent
        noise = self.scale * self.noise * np.repeat(weight, 2)
        mean = self.mean.reshape(-1)
        return mean + self.covariance.dot(
            np.linalg.solve(self.covariance + np.diag(noise), measured - mean))

    def save(self, path):
        def write(tmp_path):
            with open(tmp_path, 'wb') as handle:
                np.savez(handle, mean=self.mean, covariance=self.covariance, noise=self.noise,
                         typical_variance=self.typical_variance, scale=self.scale,
                         exponent=self.exponent, params_sha256=self.params_sha256)
        atomic_write(path, write)
        return path


@lru_cache(maxsize=1)
def _blas_controller():
    """The loaded BLAS libraries, held to one thread while a prior is applied: a 136 x 136
    solve per face is far too small to share, and with two threads on a busy 2-core CPU it
    took 5.6 ms per face instead of 0.2 ms (threadpoolctl; made on first use)."""
    return ThreadpoolController()


def decode_landmarks(codec, heatmaps, prior=None):
    """codec.decode of (N, 68, h, w) maps, refined by `prior` (a ShapePrior) when given."""
    return codec.decode(heatmaps) if prior is None else prior.decode(codec, heatmaps)


def load_shape_prior(path):
    """The ShapePrior saved at `path`; one-line ValueError when it is missing or damaged."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: np.asarray(saved[name], dtype=np.float64) for name in _ARRAYS}
            scale, exponent = float(saved['scale']), float(saved['exponent'])
            params_sha256 = str(saved['params_sha256'])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError('%s: not a readable shape prior (%s)'
                         % (path, str(exc).strip() or type(exc).__name__)) from None
    for name, shape in _ARRAYS.items():
        if arrays[name].shape != shape or not np.isfinite(arrays[name]).all():
            raise ValueError('%s: shape prior %s should be %s finite values, is %s'
                             % (path, name, shape, arrays[name].shape))
    return ShapePrior(scale=scale, exponent=exponent, params_sha256=params_sha256, **arrays)


def _in_frame(variance, to_frame):
    """Variances scaled by a similarity's squared scale (the determinant of its linear part)."""
    return variance * abs(np.linalg.det(to_frame[:, :2]))


def fit_shape_prior(ground_truth, predictions, variances, params_sha256=''):
    """A ShapePrior (scale 1, exponent 0) from N faces' (N, 68, 2) ground truth, the model's
    decoded points and their (N, 68) heatmap variances, in one frame per face."""
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    mean = _procrustes_mean(ground_truth)
    aligned = np.array([warp_points(shape, similarity_transform(shape[INNER], mean[INNER]))
                        for shape in ground_truth]).reshape(len(ground_truth), -1)
    residuals, in_frame = [], []
    for truth, predicted, variance in zip(ground_truth, predictions, variances):
        to_frame = similarity_transform(predicted[INNER], mean[INNER])
        residuals.append(warp_points(predicted, to_frame) - warp_points(truth, to_frame))
        in_frame.append(_in_frame(variance, to_frame))
    residuals = np.array(residuals).reshape(len(residuals), -1)
    return ShapePrior(mean=mean, covariance=np.cov(aligned, rowvar=False),
                      noise=(residuals ** 2).mean(axis=0),
                      typical_variance=np.mean(in_frame, axis=0), params_sha256=params_sha256)


def tune_shape_prior(prior, points, variances, ground_truth, error, scales=SCALES,
                     exponents=EXPONENTS):
    """(`prior` with the (scale, exponent) of least `error` on validation faces, rows of
    (scale, exponent, error) for every pair tried). `error(points, ground_truth)` -> float,
    e.g. the NME; points, variances and ground truth as for fit_shape_prior."""
    rows = [(scale, exponent, error(replace(prior, scale=scale, exponent=exponent)
                                    .refine(points, variances), ground_truth))
            for scale in scales for exponent in exponents]
    scale, exponent, _ = min(rows, key=lambda row: row[2])
    return replace(prior, scale=scale, exponent=exponent), rows


def _procrustes_mean(shapes):
    """Generalised Procrustes mean of (N, 68, 2) shapes on their inner points, centred and
    scaled to unit RMS radius."""
    mean = shapes[0]
    for _ in range(PROCRUSTES_ROUNDS):
        mean = mean - mean.mean(axis=0)
        mean = mean / np.sqrt((mean ** 2).sum(axis=1).mean())
        mean = np.mean([warp_points(shape, similarity_transform(shape[INNER], mean[INNER]))
                        for shape in shapes], axis=0)
    mean = mean - mean.mean(axis=0)
    return mean / np.sqrt((mean ** 2).sum(axis=1).mean())
