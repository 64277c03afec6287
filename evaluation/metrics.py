"""Landmark error metrics: the one NME used by training validation and evaluation alike."""
import numpy as np

from data.landmarks import REGIONS, eye_centres


# Per landmark type, as the published protocol defines them: the NME normaliser, and how ground
# truth is snapped to the 128-pixel crop grid before the error is measured.
NORMALISER = {'2d': 'eye', '3d': 'box'}
SNAP = {'2d': np.floor, '3d': np.round}


def normalisers(gt_points, mode):
    """Per-image normalising distance of (N, 68, 2) ground truth.

    `eye`: distance between the eye centres (2D protocol);
    `box`: sqrt(w * h) of the ground-truth bounding box (3D protocol).
    """
    gt = np.asarray(gt_points, dtype=np.float64)
    if mode == 'eye':
        left, right = eye_centres(gt)
        return np.linalg.norm(left - right, axis=-1)
    if mode == 'box':
        size = gt.max(axis=-2) - gt.min(axis=-2)
        return np.sqrt(size[..., 0] * size[..., 1])
    raise ValueError('unknown NME normaliser %r; valid: box, eye' % (mode,))


def point_errors(pred_points, gt_points, mode):
    """(N, 68) point-to-point errors divided by each image's normaliser."""
    pred = np.asarray(pred_points, dtype=np.float64)
    gt = np.asarray(gt_points, dtype=np.float64)
    dist = np.linalg.norm(pred - gt, axis=-1)
    return dist / normalisers(gt, mode)[:, None]


def nme(pred_points, gt_points, mode='eye'):
    """Per-image normalised mean error (fraction, not percent), shape (N,)."""
    return point_errors(pred_points, gt_points, mode).mean(axis=1)


def region_errors(errors):
    """{region: (N,) mean normalised error of its points in each image} of (N, 68) point
    errors over data.landmarks.REGIONS."""
    errors = np.asarray(errors, dtype=np.float64)
    return {name: errors[:, first:last + 1].mean(axis=1)
            for name, (first, last) in REGIONS.items()}


def nme_by_region(errors):
    """{region: mean normalised error} of (N, 68) point errors over data.landmarks.REGIONS."""
    return {name: float(per_image.mean()) for name, per_image in region_errors(errors).items()}


def jaw_error_components(pred_points, gt_points, mode='eye'):
    """(along, across, ends): the jaw's (points 0-16) (N, 17) normalised errors split along
    the ground-truth contour and across it, and the (N,) mean signed shift of its two end
    points along the contour towards the chin (positive: too close to the chin). A heatmap
    network places each point on its own, so its jaw error tends to run along the contour,
    where nothing but the annotators' spacing fixes a point."""
    pred = np.asarray(pred_points, dtype=np.float64)[:, :17]
    gt = np.asarray(gt_points, dtype=np.float64)
    scale = normalisers(gt, mode)[:, None]
    gt = gt[:, :17]
    tangent = np.empty_like(gt)
    tangent[:, 1:-1] = gt[:, 2:] - gt[:, :-2]
    tangent[:, 0], tangent[:, -1] = gt[:, 1] - gt[:, 0], gt[:, -1] - gt[:, -2]
    tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-12)
    offset = pred - gt
    along = (offset * tangent).sum(axis=-1) / scale
    across = (offset[..., 0] * tangent[..., 1] - offset[..., 1] * tangent[..., 0]) / scale
    # The tangent runs from point 0 towards point 16: towards the chin at 0, away at 16.
    ends = (along[:, 0] - along[:, -1]) / 2
    return np.abs(along), np.abs(across), ends


# Absolute-yaw bins (degrees) of the 3D literature's AFLW2000-3D table: [0, 30), [30, 60) and
# [60, 90]; the few labelled yaws beyond 90 degrees count in the last bin.
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))


def yaw_bin_name(low, high):
    return '[%d,%d%s' % (low, high, ']' if high == YAW_BINS[-1][1] else ')')


def nme_by_yaw(errors, yaw_degrees):
    """Mean of per-image `errors` in each absolute-yaw bin of YAW_BINS, and the mean of the
    three bin means (what 3D papers call the balanced NME; None while a bin is empty).
    Returns {'bins': [{'bin', 'images', 'nme'}], 'mean': float or None}."""
    errors = np.asarray(errors, dtype=np.float64)
    yaw = np.abs(np.asarray(yaw_degrees, dtype=np.float64))
    if errors.shape != yaw.shape:
        raise ValueError('%d errors but %d yaws' % (errors.size, yaw.size))
    bins = []
    for low, high in YAW_BINS:
        inside = (yaw >= low) & ((yaw < high) | (high == YAW_BINS[-1][1]))
        bins.append({'bin': yaw_bin_name(low, high), 'images': int(inside.sum()),
                     'nme': float(errors[inside].mean()) if inside.any() else None})
    means = [b['nme'] for b in bins]
    return {'bins': bins, 'mean': None if None in means else float(np.mean(means))}


def ced(errors, max_error=0.10, steps=1000):
    """Cumulative error distribution: (thresholds, fraction of images with error <= t)."""
    errors = np.sort(np.asarray(errors, dtype=np.float64))
    thresholds = np.linspace(0.0, max_error, steps + 1)
    return thresholds, np.searchsorted(errors, thresholds, side='right') / max(len(errors), 1)


def auc(errors, max_error):
    """Area under the CED curve up to `max_error`, normalised to [0, 1]."""
    thresholds, fraction = ced(errors, max_error)
    return float(np.trapz(fraction, thresholds) / max_error)


def failure_rate(errors, threshold):
    return float(np.mean(np.asarray(errors) > threshold))


def standard_error(values):
    """Standard error of the mean of per-image values (NaN for fewer than two): how far
    another sample of as many images could move the mean."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float('nan')
    return float(values.std(ddof=1) / np.sqrt(len(values)))


def paired_spread(errors_a, errors_b):
    """(median of the per-image differences a - b, share of images on which a is strictly
    lower), both NaN for no images: whether a mean difference is broad or the work of a few
    images (a median on the other side of zero, or near it, says few)."""
    difference = np.asarray(errors_a, dtype=np.float64) - np.asarray(errors_b, dtype=np.float64)
    if not len(difference):
        return float('nan'), float('nan')
    return float(np.median(difference)), float((difference < 0).mean())


def paired_difference(errors_a, errors_b):
    """Mean of the per-image differences a - b and its standard error (both NaN for no
    images). Pairing takes out the images' shared difficulty, so the error is much smaller
    than that of either mean."""
    difference = np.asarray(errors_a, dtype=np.float64) - np.asarray(errors_b, dtype=np.float64)
    return (float(difference.mean()) if len(difference) else float('nan'),
            standard_error(difference))
