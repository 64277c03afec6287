"""3D head model of the synthetic data set.

A mean head made of horizontal elliptical slices plus Gaussian relief (nose, eye sockets,
cheekbones, lips, chin), the 68 iBUG landmarks placed on that surface, random identity and
expression, head pose and a pin-hole camera. `make_head` returns everything the renderer
draws in camera space, plus both labelling conventions of the landmarks:

- '3d': the projected 3D points (the AFLW2000-3D convention; the far-side jaw lies behind the
  cheek when the head turns);
- '2d': the 300-W convention, where each jaw point moves along its horizontal slice of the face
  to the visible silhouette (landmark marching).

Head frame, millimetres: x towards the subject's left (image right in a frontal view), y down,
z towards the camera. iBUG point 0 is the subject's right jaw, so it has negative x. Point sets
are stored coordinate-first, (3, ...) arrays, so the large surfaces are three contiguous planes
(numpy is many times faster on those than on trailing axes of size 3).
"""
import collections
import functools
import math

import numpy as np

# Horizontal slices of the head: height y, half-width, front z and back z of the slice ellipse
# before relief. The front follows the facial profile, the back the skull and the jaw angle.
PROFILE = np.array([
    # y      half-width  front    back
    [-128.0, 0.0, -95.0, -95.0],
    [-124.0, 28.0, -68.0, -122.0],
    [-116.0, 44.0, -45.0, -150.0],
    [-100.0, 60.0, -28.0, -172.0],
    [-75.0, 70.0, -18.0, -188.0],
    [-40.0, 74.0, -13.0, -195.0],
    [-10.0, 75.0, -14.0, -193.0],
    [10.0, 75.0, -15.0, -185.0],
    [30.0, 73.0, -15.0, -170.0],
    [50.0, 68.0, -15.0, -140.0],
    [65.0, 62.0, -14.0, -112.0],
    [80.0, 54.0, -14.0, -95.0],
    [92.0, 45.0, -15.0, -76.0],
    [102.0, 33.0, -17.0, -56.0],
    [110.0, 19.0, -21.0, -40.0],
    [116.0, 0.0, -28.0, -28.0]])
HEAD_TOP, HEAD_BOTTOM = PROFILE[0, 0], PROFILE[-1, 0]

# Heights of jaw points 0..7 (8..16 mirror them; point 8 is the bottom of the chin).
JAW_Y = np.array([2.0, 20.0, 38.0, 55.0, 70.0, 84.0, 96.0, 106.0])
CHIN_INDEX = 8

# Rest (x, y) of points 17..67 and their height above the skin (brows, lids and lips stand out).
_RIGHT_BROW = [(-57, -17), (-47, -23), (-35, -25), (-23, -23), (-12, -19)]
_NOSE_BRIDGE = [(0, 0), (0, 14), (0, 28), (0, 42)]
_NOSTRILS = [(-14, 50), (-7, 53), (0, 54), (7, 53), (14, 50)]
_RIGHT_EYE = [(-45, 0), (-37, -6), (-25, -6.5), (-16, 0), (-25, 4), (-37, 4)]
_OUTER_LIPS = [(-25, 75), (-16, 69), (-7, 66), (0, 67.5), (7, 66), (16, 69), (25, 75),
               (17, 82), (8, 85), (0, 86), (-8, 85), (-17, 82)]
_INNER_LIPS = [(-20, 75), (-9, 73.5), (0, 74), (9, 73.5), (20, 75), (9, 75.5), (0, 76),
               (-9, 75.5)]


def _mirror(points, order):
    return [(-points[i][0], points[i][1]) for i in order]


FEATURE_XY = np.array(
    _RIGHT_BROW + _mirror(_RIGHT_BROW, [4, 3, 2, 1, 0]) + _NOSE_BRIDGE + _NOSTRILS
    + _RIGHT_EYE + _mirror(_RIGHT_EYE, [3, 2, 1, 0, 5, 4]) + _OUTER_LIPS + _INNER_LIPS,
    dtype=np.float64)
FEATURE_LIFT = np.array([2.0] * 10 + [0.0] * 9 + [1.5] * 12 + [1.0] * 20)
FIRST_FEATURE = 17

RIGHT_BROW, LEFT_BROW = np.arange(17, 22), np.arange(22, 27)
RIGHT_EYE, LEFT_EYE = np.arange(36, 42), np.arange(42, 48)
OUTER_LIPS, INNER_LIPS = np.arange(48, 60), np.arange(60, 68)
# Upper-lid points and the lower-lid points below them (eye closure moves one onto the other).
EYELID_PAIRS = {'right': ((37, 41), (38, 40)), 'left': ((43, 47), (44, 46))}
MOUTH_LINE_Y = 75.0

# The widest head yaw (degrees) the model is built for: the skin grid and the neck below
# assume it. Callers may ask for a narrower range.
YAW_LIMIT = 70.0
# Skin sampling: the head surface is sampled on a (height, angle) grid; yaw stays within
# +-YAW_LIMIT, so the back of the head (|angle| > 165 degrees) is never seen.
GRID_STEP_MM = 2.0
MAX_ANGLE = math.radians(165.0)
# Columns further round the head than this from the camera's direction are never seen (the
# silhouette lies at 90 degrees; the rest covers pitch and the top of the head).
VISIBLE_TURN = math.radians(125.0)
NECK_TOP = 50.0
# The body turns and tilts only partly with the head.
BODY_SHARE = {'yaw': 0.35, 'pitch': 0.3, 'roll': 0.5}
# Head and body turn about this point (between the ears); the neck's axis lies at NECK_Z.
PIVOT = np.array([0.0, 20.0, -90.0])
NECK_Z = -75.0

Head = collections.namedtuple('Head', [
    'landmarks',        # (3, 68) camera-space 3D points
    'jaw_silhouette',   # (3, 17) camera-space 2D-convention jaw points
    'skin',             # dict: positions, normals (3, N), hair (N,) weight, grid shape
    'neck',             # dict: positions, normals (3, N), cloth and occlusion (N,), shape
    'torso',            # (3, K) camera-space outline of shoulders and chest
    'long_hair',        # (3, K) camera-space outline of hair hanging behind, or None
    'ears',             # list of (3, K) camera-space outlines (empty when hair covers them)
    'irises',           # list of two (3, K) camera-space iris outlines (right, left eye)
    'params',           # the sampled identity / expression / pose / style values
])


def _unit(value):
    # Clamp to [0, 1]; np.clip costs several times more on the many small arrays here.
    return np.minimum(np.maximum(value, 0.0), 1.0)


def _ramp(value, start, stop):
    return _unit((value - start) / (stop - start))


def _slice(y):
    """Slice geometry at heights y: half-width, centre z, half-depth."""
    width = np.interp(y, PROFILE[:, 0], PROFILE[:, 1])
    front = np.interp(y, PROFILE[:, 0], PROFILE[:, 2])
    back = np.interp(y, PROFILE[:, 0], PROFILE[:, 3])
    return width, (front + back) / 2.0, (front - back) / 2.0


def _gaussian(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def relief(x, y, p, with_nose=True):
    """Facial relief (mm added to z) at rest-frame (x, y) for identity/expression `p`."""
    z = 4.0 * _gaussian(x, y, 0, -16, 45, 7)                                # brow ridge
    z = z - 7.0 * (_gaussian(x, y, -31, -1, 14, 9) + _gaussian(x, y, 31, -1, 14, 9))
    cheek = p['cheek'] + 3.0 * p['smile']
    z = z + cheek * (_gaussian(x, y, -40, 28, 13, 13) + _gaussian(x, y, 40, 28, 13, 13))
    z = z + p['lips'] * _gaussian(x, y, 0, 76, 20, 10) - 3.0 * _gaussian(x, y, 0, 90, 12, 3)
    z = z + p['chin'] * _gaussian(x, y, 0, 100, 13, 8)
    if with_nose:
        length = p['nose_length']
        height = np.interp(y, np.array([-8, 0, 15, 30, 42, 48, 54]) * [1, 1, length, length,
                                                                           length, 1, 1],
                           [0, 3, 8, 15, 22, 16, 0]) * p['nose_height']
        width = np.interp(y, [0, 15, 30, 42, 48], [6, 7, 8, 9, 12]) * p['nose_width']
        z = z + height * np.exp(-0.5 * (x / width) ** 2)
        ala = 14.0 * p['nose_width']
        z = z + 6.0 * (_gaussian(x, y, -ala, 48, 5, 5) + _gaussian(x, y, ala, 48, 5, 5))
    return z


def _frontness(angle):
    """Weight of the facial relief: 1 on the face, fading smoothly to 0 at the sides."""
    t = _unit(np.cos(angle) / 0.6)
    return t * t * (3.0 - 2.0 * t)


def _slice_points(y, angle, p, with_nose=True):
    """Rest-frame surface points of slices `y` at angles (0 = front, +90 deg = subject's left)."""
    width, centre, depth = _slice(y)
    x = width * np.sin(angle)
    frontness = _frontness(angle)
    z = centre + depth * np.cos(angle) + relief(x, y, p, with_nose) * frontness
    return np.stack(np.broadcast_arrays(x, y, z))


def _front_z(x, y, p):
    """z of the front surface at rest-frame (x, y) (points inside the face outline)."""
    width = np.interp(y, PROFILE[:, 0], PROFILE[:, 1])
    angle = np.arcsin(np.minimum(np.maximum(x / np.maximum(width, 1e-6), -1.0), 1.0))
    return _slice_points(y, angle, p)[2]


def deform(points, p):
    """Global identity/expression deformation of rest-frame points (3, ...)."""
    x, y, z = points
    # The jaw drops by `mouth_open` below the lips, blending over a band that widens away
    # from the mouth so the cheeks stretch smoothly.
    band = 0.5 + 0.7 * np.maximum(np.abs(x) - 18.0, 0.0)
    dropped = (y + p['mouth_open'] * _ramp(y, MOUTH_LINE_Y - band, MOUTH_LINE_Y + band)
               + (p['chin_length'] - 1.0) * np.maximum(y - MOUTH_LINE_Y, 0.0))
    jaw = 1.0 + (p['jaw_width'] - 1.0) * _ramp(y, 20.0, 80.0)
    # Smooth random shape basis (mm): tapers, bends and flattening of the whole head, and a
    # slight left/right asymmetry.
    u, v = x / 75.0, (y - 30.0) / 100.0
    c = p['shape_basis']
    return np.stack([x * p['width'] * jaw + c[0] * u * v + c[1] * u * v * v,
                     dropped * p['height'] + (c[2] * v + c[3]) * u * u,
                     z * p['depth'] + c[4] * u * u + c[5] * v * v + c[6] * u])


def sample_params(rng, max_yaw=YAW_LIMIT):
    """Random identity, expression, pose (|yaw| <= max_yaw degrees) and hair/ear style."""
    closed = rng.rand() < 0.1
    return {
        'width': rng.uniform(0.9, 1.1), 'height': rng.uniform(0.92, 1.08),
        'depth': rng.uniform(0.9, 1.1), 'jaw_width': rng.uniform(0.85, 1.1),
        'chin_length': rng.uniform(0.8, 1.25), 'nose_height': rng.uniform(0.75, 1.25),
        'nose_width': rng.uniform(0.85, 1.25), 'nose_length': rng.uniform(0.9, 1.1),
        'cheek': rng.uniform(3.0, 8.0), 'lips': rng.uniform(4.0, 8.0),
        'chin': rng.uniform(4.0, 9.0), 'eye_spacing': rng.normal(0.0, 1.5),
        'eye_size': rng.uniform(0.85, 1.15), 'eye_open': rng.uniform(0.75, 1.25),
        'brow_height': rng.normal(0.0, 2.0), 'mouth_width': rng.uniform(0.85, 1.15),
        'lip_thickness': rng.uniform(0.7, 1.3),
        'shape_basis': rng.normal(0.0, [4.0, 3.0, 3.0, 3.0, 5.0, 5.0, 1.0]),
        # Expression.
        'mouth_open': rng.uniform(2.0, 24.0) if rng.rand() < 0.35 else 0.0,
        'smile': rng.uniform(0.0, 1.0) if rng.rand() < 0.4 else 0.0,
        'brow_raise': rng.normal(0.0, 2.5),
        'eye_closure': (rng.uniform(0.7, 1.0, 2) if closed else rng.uniform(0.0, 0.2, 2)),
        'gaze': rng.uniform(-0.3, 0.3, 2),
        'jitter': rng.normal(0.0, 0.8, (len(FEATURE_XY), 2)),
        # Pose: half near-frontal, half spread over the whole yaw range.
        'yaw': (rng.uniform(-max_yaw, max_yaw) if rng.rand() < 0.5 else
                float(np.clip(rng.normal(0, 20), -max_yaw, max_yaw))),
        'pitch': float(np.clip(rng.normal(0, 12), -35, 35)),
        'roll': float(np.clip(rng.normal(0, 10), -30, 30)),
        'distance': rng.uniform(450.0, 2500.0),
        # Hair: hairline height at the front, above the ears and at the back (rest-frame y).
        'hair_front': rng.uniform(-30, -18) if rng.rand() < 0.25 else rng.uniform(-85, -55),
        'hair_side': rng.uniform(-40, 60), 'hair_back': rng.uniform(40, 140),
        'hair_thickness': rng.uniform(3.0, 14.0), 'hair_wave': rng.uniform(0, 2 * np.pi),
        'bald': rng.rand() < 0.08,
        # Long hair hangs behind the head down to this rest-frame height (0: short hair).
        'hair_length': rng.uniform(140.0, 320.0) if rng.rand() < 0.35 else 0.0,
        'hair_spread': rng.uniform(5.0, 35.0),
        'beard': rng.uniform(0.3, 1.0) if rng.rand() < 0.15 else 0.0,
        'neck_width': rng.uniform(0.85, 1.15), 'collar': rng.uniform(150.0, 195.0),
        'shoulders': rng.uniform(150.0, 200.0),
    }


def _feature_rest_xy(p):
    """Rest-frame (x, y) of points 17..67 after identity and expression."""
    xy = np.zeros((68, 2))
    xy[FIRST_FEATURE:] = FEATURE_XY
    for eye, side in ((RIGHT_EYE, -1.0), (LEFT_EYE, 1.0)):
        centre = xy[eye].mean(axis=0)
        local = (xy[eye] - centre) * p['eye_size'] * [1.0, p['eye_open']]
        xy[eye] = centre + local + [side * p['eye_spacing'], 0.0]
    xy[np.r_[RIGHT_BROW, LEFT_BROW], 1] += p['brow_height'] - p['brow_raise']
    for side, eye_name in ((0, 'right'), (1, 'left')):
        for upper, lower in EYELID_PAIRS[eye_name]:
            xy[upper, 1] += 0.95 * p['eye_closure'][side] * (xy[lower, 1] - xy[upper, 1])
    xy[np.r_[OUTER_LIPS, INNER_LIPS], 0] *= p['mouth_width']
    xy[OUTER_LIPS, 1] = MOUTH_LINE_Y + (xy[OUTER_LIPS, 1] - MOUTH_LINE_Y) * p['lip_thickness']
    for points, outwards, upwards in (([48, 54, 60, 64], 5.0, 4.0), ([49, 53, 55, 59], 2.0, 2.0)):
        xy[points, 0] += np.sign(xy[points, 0]) * outwards * p['smile']
        xy[points, 1] -= upwards * p['smile']
    xy[31:36, 0] *= p['nose_width']
    xy[28:31, 1] *= p['nose_length']  # the bridge follows the relief's nose (`relief`)
    return xy[FIRST_FEATURE:] + p['jitter']


def rest_landmarks(p):
    """(3, 68) rest-frame landmarks (before `deform`)."""
    points = np.zeros((68, 3))
    points[:8] = _slice_points(JAW_Y, -np.pi / 2, p).T
    points[16:8:-1] = _slice_points(JAW_Y, np.pi / 2, p).T
    points[CHIN_INDEX] = _slice_points(HEAD_BOTTOM - 1.0, 0.0, p)
    xy = _feature_rest_xy(p)
    points[FIRST_FEATURE:, :2] = xy
    points[FIRST_FEATURE:, 2] = _front_z(xy[:, 0], xy[:, 1], p) + FEATURE_LIFT
    return points.T.copy()


def rotation_matrix(yaw, pitch, roll):
    """Head rotation (degrees): yaw about y, then pitch about x, then roll about z."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points, distance):
    """Pin-hole projection of camera-space points (3, ...) -> (2, ...), camera at
    z = distance looking down -z, focal length = distance (about 1 px per mm at the head)."""
    scale = distance / (distance - points[2])
    return np.stack([points[0] * scale, points[1] * scale])


@functools.lru_cache(maxsize=1)
def _profile_steps():
    """Finely spaced heights of the head profile and the step in half-width and in back z
    between neighbours (the shape of the rows, before any deformation)."""
    fine = np.linspace(HEAD_TOP, HEAD_BOTTOM, 2000)
    width, centre, depth = _slice(fine)
    return fine, np.diff(width) ** 2 + np.diff(centre - depth) ** 2


@functools.lru_cache(maxsize=1)
def _skin_angles():
    """Grid columns: angles at most GRID_STEP_MM apart on any slice, and the indices of
    the frontal ones (which get relief)."""
    # The largest radius of a slice ellipse is its half-width or half-depth, whichever is more.
    radius = max(PROFILE[:, 1].max(), (PROFILE[:, 2] - PROFILE[:, 3]).max() / 2.0)
    angles = np.linspace(-MAX_ANGLE, MAX_ANGLE, int(2 * MAX_ANGLE * radius / GRID_STEP_MM))
    return angles.astype(np.float32), np.flatnonzero(np.abs(angles) < np.pi / 2)


def _skin_grid(p, columns):
    """The head surface without relief on a (height, angle) grid: heights, angles, positions
    and normals (3, rows, cols), for the grid columns `columns`. Rows are evenly spaced along
    the profile's arc length as deformed, so steep parts (top of the skull, underside of the
    chin) and the stretch of an opening mouth are sampled as densely as the rest."""
    fine, shape_steps = _profile_steps()
    # Vertical stretch: the largest over a few columns of the face (an opening mouth stretches
    # the middle over a narrow band, the cheeks over a wider one).
    stretch = np.max([np.abs(np.diff(deform(np.stack([np.full_like(fine, x), fine,
                                                      np.zeros_like(fine)]), p)[1]))
                      for x in (0.0, 18.0, 24.0, 30.0, 40.0, 55.0)], axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.sqrt(stretch ** 2 + shape_steps))])
    rows = np.interp(np.arange(0.0, arc[-1], GRID_STEP_MM), arc, fine).astype(np.float32)
    angles = _skin_angles()[0][columns]
    width, centre, depth = (a.astype(np.float32)[:, None] for a in _slice(rows))
    heights, angles = np.meshgrid(rows, angles, indexing='ij')
    positions = np.stack([width * np.sin(angles), heights, centre + depth * np.cos(angles)])
    return heights, angles, positions, _grid_normals(positions)


@functools.lru_cache(maxsize=1)
def _neck_grid():
    """(fraction of the neck length, angle) grid of the neck's front, which is all the
    camera sees of it as the body turns at most BODY_SHARE['yaw'] * YAW_LIMIT degrees."""
    fractions = np.linspace(0.0, 1.0, 90)
    angles = np.linspace(-math.radians(115), math.radians(115), 100)
    return [a.astype(np.float32) for a in np.meshgrid(fractions, angles, indexing='ij')]


def _differences(points, axis):
    """Central differences of a grid along `axis` (one-sided at the borders)."""
    moved = np.moveaxis(points, axis, 0)
    steps = np.empty_like(moved)
    steps[1:-1] = moved[2:] - moved[:-2]
    steps[0], steps[-1] = moved[1] - moved[0], moved[-1] - moved[-2]
    return np.moveaxis(steps, 0, axis)


def _grid_normals(points):
    """Outward unit normals (3, rows, cols) of a grid surface sampled in (height, angle)."""
    dh, da = _differences(points, 1), _differences(points, 2)
    normals = np.stack([da[1] * dh[2] - da[2] * dh[1], da[2] * dh[0] - da[0] * dh[2],
                        da[0] * dh[1] - da[1] * dh[0]])
    length = np.sqrt(normals[0] ** 2 + normals[1] ** 2 + normals[2] ** 2)
    return normals / np.maximum(length, 1e-9)


def _hair_weight(heights, angles, p):
    turn = np.abs(angles)
    hairline = (p['hair_front'] + (p['hair_side'] - p['hair_front'])
                * _ramp(turn, math.radians(55), math.radians(100))
                + (p['hair_back'] - p['hair_side']) * _ramp(turn, math.radians(110), np.pi)
                + 4.0 * np.sin(angles * 9.0 + p['hair_wave']))
    if p['bald']:
        hairline = np.minimum(hairline, -95.0 + 80.0 * _ramp(turn, math.radians(60), np.pi))
    return _unit((hairline - heights) / 3.0)


def _skin(p, rotation):
    """Head surface seen from the camera: the grid columns within VISIBLE_TURN of the
    direction the camera looks from, with relief, hair and deformation."""
    angles, front = _skin_angles()
    towards_camera = rotation.T[:, 2]
    azimuth = math.atan2(towards_camera[0], towards_camera[2])
    visible = np.flatnonzero(np.abs(angles - azimuth) <= VISIBLE_TURN)
    columns = slice(visible[0], visible[-1] + 1)
    front = np.intersect1d(front, visible) - visible[0]
    heights, angles, rest, base_normals = _skin_grid(p, columns)
    frontness = _frontness(angles[:, front])
    rest[2][:, front] += relief(rest[0][:, front], rest[1][:, front], p) * frontness
    hair = _hair_weight(heights, angles, p)
    rest += base_normals * (p['hair_thickness'] * hair)
    points = deform(rest, p)
    # Beard and moustache are coloured like hair but lie flat on the skin.
    hair = np.maximum(hair, _beard_weight(rest[0], heights, angles, p))
    return {'positions': points.reshape(3, -1), 'normals': _grid_normals(points).reshape(3, -1),
            'hair': hair.reshape(-1), 'shape': hair.shape}


def _beard_weight(x, y, angles, p):
    if not p['beard']:
        return np.zeros_like(y)
    chin = _ramp(y, 66.0, 82.0) * (1.0 - _gaussian(x, y, 0.0, 77.0, 26.0, 7.0))
    moustache = _gaussian(x, y, 0.0, 63.5, 19.0, 2.5)
    return p['beard'] * np.maximum(chin, moustache) * _ramp(np.cos(angles), 0.0, 0.3)


def _neck(p):
    fractions, angles = _neck_grid()
    heights = NECK_TOP + fractions * (p['collar'] + 15.0 - NECK_TOP)
    radius = 40.0 * p['neck_width']
    points = np.stack([radius * np.sin(angles), heights,
                       NECK_Z + radius * np.cos(angles)]).astype(np.float32)
    collar = p['collar'] - 30.0 + 15.0 * np.cos(angles)
    cloth = _ramp(heights, collar, collar + 3.0)
    # The jaw shades the top of the neck.
    occlusion = 1.0 - 0.45 * (1.0 - _ramp(heights, NECK_TOP + 55.0, NECK_TOP + 110.0))
    return {'positions': points.reshape(3, -1), 'normals': _grid_normals(points).reshape(3, -1),
            'cloth': cloth.reshape(-1), 'occlusion': occlusion.reshape(-1), 'shape': cloth.shape}


def _torso(p):
    """Outline (3, K) of shoulders and chest: neck base, sloping shoulders, rounded tips and
    straight down out of the picture."""
    half = p['shoulders'] * p['neck_width']
    across = np.linspace(-1.0, 1.0, 41)
    reach = np.abs(across) * half
    top = (p['collar'] - 8.0 + 45.0 * _ramp(reach, 35.0, half * 0.85) ** 1.5
           + 60.0 * _ramp(reach, half * 0.8, half) ** 2)
    x = np.concatenate([across * half, [half, -half]])
    y = np.concatenate([top, [p['collar'] + 600.0] * 2])
    return np.stack([x, y, np.full_like(x, NECK_Z)])


def _long_hair(p):
    """Outline (3, K) of long hair hanging behind the head and neck, or None."""
    if not p['hair_length'] or p['bald']:
        return None
    width, centre, _ = _slice(np.array([-60.0, 20.0]))
    top, side = width + p['hair_thickness']
    bottom = side + p['hair_spread']
    x = np.array([-top, -side, -bottom, bottom, side, top])
    y = np.array([-60.0, 20.0, p['hair_length'], p['hair_length'], 20.0, -60.0])
    return np.stack([x, y, np.full_like(x, centre[1] - 10.0)])


def _ears(p):
    if (p['hair_side'] > 5.0 or p['hair_length']) and not p['bald']:
        return []
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ears = []
    for side in (-1.0, 1.0):
        width, centre, _ = _slice(22.0)
        base = np.array([side * (width + 2.0), 22.0, centre - 5.0])
        backward = np.array([side * math.sin(math.radians(25)), 0.0,
                             -math.cos(math.radians(25))])
        outline = (base[:, None] + np.outer(backward, 15.0 * np.cos(t) - 5.0)
                   + np.outer([0.0, 1.0, 0.0], 30.0 * np.sin(t) * (1.0 - 0.15 * np.cos(t))))
        ears.append(deform(outline, p))
    return ears


def _irises(p, landmarks_rest):
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    irises = []
    for side, eye in enumerate((RIGHT_EYE, LEFT_EYE)):
        eye_points = landmarks_rest[:, eye]
        width = np.linalg.norm(eye_points[:, 0] - eye_points[:, 3])
        radius = 0.21 * width
        centre = eye_points.mean(axis=1) + [p['gaze'][0] * width * 0.5, p['gaze'][1] * 3.0, 0]
        centre[2] = eye_points[2].max() + 1.0
        outline = centre[:, None] + np.stack([radius * np.cos(t), radius * np.sin(t), 0 * t])
        irises.append(deform(outline, p))
    return irises


def _jaw_silhouette(p, rotation, landmarks_rest):
    """300-W jaw: each jaw point slides along its slice of the face (nose excluded) towards the
    face's midline to wherever the projected surface reaches furthest out on its side."""
    # Rows: jaw points 0..7 then 16..9; columns: candidates from the midline outwards.
    sides = np.repeat([-1.0, 1.0], len(JAW_Y))[:, None]
    angles = sides * np.linspace(0.0, np.pi / 2, 33)
    heights = np.tile(JAW_Y, 2)[:, None]
    candidates = _to_camera(deform(_slice_points(heights, angles, p, with_nose=False), p),
                            rotation)
    outward = rotation[:2, 0] / np.linalg.norm(rotation[:2, 0])
    plane = project(candidates, p['distance'])
    reach = sides * (outward[0] * plane[0] + outward[1] * plane[1])
    best = np.argmax(reach, axis=1)
    chosen = candidates[:, np.arange(len(best)), best]
    jaw = np.zeros((3, 17))
    jaw[:, :8], jaw[:, 16:8:-1] = chosen[:, :8], chosen[:, 8:]
    jaw[:, CHIN_INDEX] = _to_camera(deform(landmarks_rest[:, CHIN_INDEX], p), rotation)
    return jaw


def _to_camera(points, rotation):
    """Rotate rest-frame points (3, ...) about the head pivot into camera space."""
    flat = points.reshape(3, -1) - PIVOT.astype(points.dtype)[:, None]
    return (rotation.astype(points.dtype) @ flat).reshape(points.shape)


def _oriented(surface, rotation):
    return dict(surface, positions=_to_camera(surface['positions'], rotation),
                normals=rotation.astype(np.float32) @ surface['normals'])


def make_head(rng, max_yaw=YAW_LIMIT):
    """Sample one head and return it in camera space (see `Head`)."""
    p = sample_params(rng, max_yaw)
    rotation = rotation_matrix(p['yaw'], p['pitch'], p['roll'])
    body = rotation_matrix(*(p[angle] * BODY_SHARE[angle] for angle in ('yaw', 'pitch', 'roll')))
    landmarks_rest = rest_landmarks(p)
    hair = _long_hair(p)
    to_camera = functools.partial(_to_camera, rotation=rotation)
    return Head(
        landmarks=to_camera(deform(landmarks_rest, p)),
        jaw_silhouette=_jaw_silhouette(p, rotation, landmarks_rest),
        skin=_oriented(_skin(p, rotation), rotation),
        neck=_oriented(_neck(p), body),
        torso=_to_camera(_torso(p), body),
        long_hair=None if hair is None else _to_camera(hair, rotation),
        ears=[to_camera(ear) for ear in _ears(p)],
        irises=[to_camera(iris) for iris in _irises(p, landmarks_rest)],
        params=p)


def labels_3d(head):
    """(68, 2) camera-plane x/y points of the '3d' convention."""
    return project(head.landmarks, head.params['distance']).T


def labels_2d(head):
    """(68, 2) camera-plane x/y points of the '2d' (300-W) convention."""
    points = head.landmarks.copy()
    points[:, :17] = head.jaw_silhouette
    return project(points, head.params['distance']).T
