"""evaluation.metrics beyond the protocol's NME: errors by face region and the jaw's error split
along and across its contour, the paired difference of two pipelines; and their lines in the
end-to-end comparison's summary."""
import re

import numpy as np
import pytest

from helpers import synthetic_face_points

from data.landmarks import REGIONS, eye_centres
from evaluation import metrics
from scripts.end_to_end import EndToEnd


def test_regions_cover_the_68_points_once_and_average_their_errors():
    covered = sorted(i for first, last in REGIONS.values() for i in range(first, last + 1))
    assert covered == list(range(68))
    errors = np.zeros((2, 68))
    for value, (first, last) in enumerate(REGIONS.values(), start=1):
        errors[0, first:last + 1] = value
        errors[1, first:last + 1] = 3 * value
    assert metrics.nme_by_region(errors) == {name: 2.0 * value for value, name
                                             in enumerate(REGIONS, start=1)}


def jaw_frame(gt):
    """Unit tangents (point 0 towards 16) and normals of the jaw, by central differences."""
    padded = np.concatenate([gt[:1], gt[:17], gt[16:17]])
    tangent = padded[2:] - padded[:-2]
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return tangent, np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


@pytest.mark.parametrize('move, along, across, ends', [
    ('along every point', 1.0, 0.0, 0.0),
    ('across every point', 0.0, 1.0, 0.0),
    ('both ends to the chin', None, 0.0, 1.0),
])
def test_jaw_error_components(move, along, across, ends):
    gt = synthetic_face_points()
    left, right = eye_centres(gt)
    step = 0.05 * np.linalg.norm(left - right)      # 5% of the eye distance
    tangent, normal = jaw_frame(gt)
    pred = gt.copy()
    if move == 'along every point':
        pred[:17] += step * tangent
    elif move == 'across every point':
        pred[:17] += step * normal
    else:
        pred[0] += step * tangent[0]                # point 0's tangent points to the chin,
        pred[16] -= step * tangent[16]              # point 16's away from it
    got_along, got_across, got_ends = metrics.jaw_error_components(pred[None], gt[None])
    assert got_along.shape == got_across.shape == (1, 17) and got_ends.shape == (1,)
    if along is not None:
        np.testing.assert_allclose(got_along, 0.05 * along, atol=1e-9)
    else:
        np.testing.assert_allclose(got_along[0, [0, 16]], 0.05, atol=1e-9)
        np.testing.assert_allclose(got_along[0, 1:16], 0.0, atol=1e-9)
    np.testing.assert_allclose(got_across, 0.05 * across, atol=1e-9)
    np.testing.assert_allclose(got_ends, 0.05 * ends, atol=1e-9)
    # The other way round, the ends are too far from the chin.
    if move == 'both ends to the chin':
        _, _, away = metrics.jaw_error_components((2 * gt - pred)[None], gt[None])
        np.testing.assert_allclose(away, -0.05, atol=1e-9)


def test_end_to_end_summary_prints_regions_and_jaw_components_of_faces_both_found():
    gt = synthetic_face_points()
    tangent, _ = jaw_frame(gt)
    left, right = eye_centres(gt)
    step = 0.10 * np.linalg.norm(left - right)
    result = EndToEnd()
    for missed_by_dlib in (False, True):
        result.names.append('face')
        result.ground_truth.append(gt)
        result.points['ours'].append(gt + np.where(np.arange(68)[:, None] < 17,
                                                   step * tangent[np.minimum(np.arange(68), 16)],
                                                   0.0))
        result.points['dlib'].append(gt + (5.0 if missed_by_dlib else 0.0))
        result.missed['ours'].append(False)
        result.missed['dlib'].append(missed_by_dlib)
    lines = result.summary_lines()
    ours = lines[lines.index(next(l for l in lines if l.startswith('ours'))) + 1]
    dlib = lines[lines.index(next(l for l in lines if l.startswith('dlib'))) + 1]
    # Ours: every jaw point 10% along the contour; dlib exact on the one face both found.
    assert 'jaw 10.000%' in ours and 'brows 0.000%' in ours
    assert re.search(r'along 10\.000% / across 0\.000%, ends [+-]0\.00% towards the chin$', ours)
    assert 'jaw 0.000%' in dlib and 'mouth 0.000%' in dlib
    # 17 of 68 points 10% off: 2.5% per face for ours; dlib is 0 on the face both found.
    difference, spread = lines[-2:]
    all_photos = 100 * (result.errors('ours') - result.errors('dlib')).mean()
    assert difference.startswith('paired by photo, ours - dlib: both-found +2.500% (SE nan)')
    assert difference.endswith('all %+.3f%% (SE %.3f)' % (all_photos, abs(all_photos - 2.5)))
    # Ours' jaw is 10% off on the one face both found, where dlib is exact.
    assert spread == ('both-found per photo: median ours - dlib +2.500%; ours lower on 0% of '
                      'the photos, on the jaw on 0%')


def test_paired_spread_is_the_median_difference_and_the_share_where_a_is_lower():
    median, lower = metrics.paired_spread([0.05, 0.07, 0.06, 0.10, 0.02],
                                          [0.04, 0.08, 0.05, 0.06, 0.02])
    # Differences 0.01, -0.01, 0.01, 0.04, 0: median 0.01; a tie is not lower.
    assert median == pytest.approx(0.01) and lower == pytest.approx(0.2)
    # A mean carried by one image: the median and the share say so.
    median, lower = metrics.paired_spread([0.01, 0.01, 0.01, 0.50], [0.02, 0.02, 0.02, 0.02])
    assert median == pytest.approx(-0.01) and lower == pytest.approx(0.75)
    assert all(np.isnan(value) for value in metrics.paired_spread([], []))


def test_paired_difference_is_the_mean_difference_with_its_standard_error():
    mean, error = metrics.paired_difference([0.05, 0.07, 0.06, 0.10], [0.04, 0.07, 0.05, 0.06])
    # Differences 0.01, 0, 0.01, 0.04: mean 0.015, sample SD 0.017321, over sqrt(4).
    assert mean == pytest.approx(0.015)
    assert error == pytest.approx(np.std([0.01, 0, 0.01, 0.04], ddof=1) / 2)
    assert error == pytest.approx(0.0086603, abs=1e-7)
    # A shared difficulty cancels: the same offset on every image has no error.
    mean, error = metrics.paired_difference([0.03, 0.09, 0.2], [0.02, 0.08, 0.19])
    assert (mean, error) == (pytest.approx(0.01), pytest.approx(0.0, abs=1e-12))
    # One image gives no spread to measure; no image, not even a mean.
    assert np.isnan(metrics.standard_error([0.05]))
    assert all(np.isnan(value) for value in metrics.paired_difference([], []))
    assert metrics.standard_error([0.04, 0.06]) == pytest.approx(0.01)
