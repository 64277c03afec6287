"""Readers for the annotation and image files of public face-alignment data sets.

Every reader returns 0-based pixel coordinates: the centre of the top-left pixel is (0, 0), the
convention of the record labels (the original toolkit maps them with plain affine matrices and
`cv2.warpAffine`, whose pixel centres sit on integers). iBUG `.pts` files and MATLAB annotations
(AFLW2000-3D, COFW-68) are 1-based, so 1 is subtracted, as menpo does when it reads `.pts`.
Bad input raises ValueError naming the file and the problem.
"""
import zlib

import cv2
import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from .landmarks import NUM_LANDMARKS

# 1-based annotation coordinates -> 0-based pixel coordinates.
ONE_BASED_OFFSET = 1.0


def read_pts(path, num_points=NUM_LANDMARKS):
    """iBUG `.pts` file -> (num_points, 2) float64 x/y, 0-based.

    Accepts the standard form (`version: 1` / `n_points: N` / `{` / N lines `x y` / `}`) and a
    bare list of `x y` lines.
    """
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError('%s: cannot read points file (%s)' % (path, err)) from None
    lines = [line for line in lines if line]
    declared = None
    if '{' in lines:
        header, body = lines[:lines.index('{')], lines[lines.index('{') + 1:]
        if '}' not in body:
            raise ValueError('%s: points block has no closing "}"' % path)
        body = body[:body.index('}')]
        for line in header:
            key, _, value = line.partition(':')
            if key.strip() == 'n_points':
                try:
                    declared = int(value)
                except ValueError:
                    raise ValueError('%s: bad header line %r' % (path, line)) from None
    else:
        body = lines
    try:
        points = np.array([[float(v) for v in line.split()] for line in body], dtype=np.float64)
    except ValueError:
        raise ValueError('%s: points must be lines of two numbers "x y"' % path) from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError('%s: points must be lines of two numbers "x y"' % path)
    if declared is not None and declared != len(points):
        raise ValueError('%s: header says %d points, file has %d' % (path, declared, len(points)))
    if len(points) != num_points:
        raise ValueError('%s: expected %d points, found %d' % (path, num_points, len(points)))
    return points - ONE_BASED_OFFSET


def _load_mat(path, names):
    try:
        content = scipy.io.loadmat(path, variable_names=names)
    except NotImplementedError:
        raise ValueError('%s: MATLAB v7.3 (HDF5) file; reading it needs the h5py package'
                         % path) from None
    # What scipy raises on an empty, junk, truncated or corrupted file.
    except (OSError, ValueError, TypeError, IndexError, MatReadError, zlib.error) as err:
        raise ValueError('%s: unreadable .mat file (%s)' % (path, err)) from None
    for name in names:
        if name not in content:
            raise ValueError('%s: no variable %r' % (path, name))
    return content


def _checked_points(path, points, num_points):
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (num_points, 2):
        raise ValueError('%s: expected %d points, found shape %s' % (path, num_points,
                                                                     points.shape))
    return points - ONE_BASED_OFFSET


def read_aflw2000_points(path, num_points=NUM_LANDMARKS):
    """AFLW2000-3D `.mat` -> (68, 2) x/y, 0-based: the image-plane projection (x, y rows) of
    `pt3d_68` (3 x 68), the 3D landmarks the released 3D data sets store."""
    pt3d = np.asarray(_load_mat(path, ['pt3d_68'])['pt3d_68'])
    if pt3d.ndim != 2 or pt3d.shape[0] != 3:
        raise ValueError('%s: pt3d_68 has shape %s, expected 3 x %d' % (path, pt3d.shape,
                                                                         num_points))
    return _checked_points(path, pt3d[:2].T, num_points)


def wrap_degrees(angle):
    """An angle in degrees folded into [-180, 180): some AFLW2000-3D poses are stored a turn or
    more away (yaw -351.2 for image03123, which is -351.2 + 360 = 8.8)."""
    return (float(angle) + 180.0) % 360.0 - 180.0


def read_aflw2000_pose(path):
    """AFLW2000-3D `.mat` -> {'pitch', 'yaw', 'roll'} in degrees, each folded into [-180, 180),
    from `Pose_Para` (1 x 7: pitch, yaw, roll in radians, then translation and scale, the
    3DDFA order)."""
    pose = np.asarray(_load_mat(path, ['Pose_Para'])['Pose_Para'], dtype=np.float64).reshape(-1)
    if pose.size < 3 or not np.all(np.isfinite(pose[:3])):
        raise ValueError('%s: Pose_Para must start with three finite angles, got %s'
                         % (path, pose[:3].tolist()))
    return {name: wrap_degrees(np.degrees(angle))
            for name, angle in zip(('pitch', 'yaw', 'roll'), pose[:3])}


def read_cofw68_points(path, num_points=NUM_LANDMARKS):
    """COFW-68 annotation `.mat` (cofw68-benchmark `test_annotations/<n>_points.mat`, variable
    `Points`, 68 x 2 x/y) -> (68, 2) x/y, 0-based."""
    return _checked_points(path, _load_mat(path, ['Points'])['Points'], num_points)


def _as_bgr(path, index, image):
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    raise ValueError('%s: image %d has shape %s' % (path, index + 1, image.shape))


def _is_hdf5_mat(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read(128).startswith(b'MATLAB 7.3')
    except OSError as err:
        raise ValueError('%s: cannot read (%s)' % (path, err)) from None


def _read_hdf5_images(path, name):
    try:
        import h5py
    except ImportError:
        raise ValueError('%s: MATLAB v7.3 (HDF5) file; reading it needs the h5py package'
                         % path) from None
    with h5py.File(path, 'r') as mat:
        if name not in mat:
            raise ValueError('%s: no variable %r' % (path, name))
        # MATLAB stores arrays column-major, so each image comes back transposed
        # ((3, W, H) colour, (W, H) grey).
        return [np.array(mat[ref]).T for ref in np.asarray(mat[name]).reshape(-1)]


def read_cofw_images(path, name='IsT'):
    """COFW image file (`COFW_test_color.mat`, cell array `IsT` of RGB or grey images) -> list
    of BGR uint8 images; list index i holds COFW test image i + 1."""
    if _is_hdf5_mat(path):
        cells = _read_hdf5_images(path, name)
    else:
        cells = _load_mat(path, [name])[name].reshape(-1)
    return [_as_bgr(path, index, image) for index, image in enumerate(cells)]
