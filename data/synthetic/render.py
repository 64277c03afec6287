"""Photo-like rendering of a synthetic head (data/synthetic/face.py) with OpenCV and numpy.

The head and neck surfaces are point-splatted with a z-buffer at half resolution into albedo,
shading and depth maps; eyes, brows, nostrils, lips and ears are then painted into the albedo
at full resolution (data/synthetic/features.py), each only where the skin in front of it does
not hide it (so the far eye disappears behind the nose when the head turns). Shading is applied once to skin and features
alike, the head is laid over a cluttered background, and occluders and camera degradations
(blur, noise, JPEG) come last. Colours are float BGR in [0, 1] until the final image.
"""
import math

import cv2
import numpy as np

from .face import LEFT_EYE, RIGHT_EYE, project
from .features import (SUBPIXEL_SHIFT, as_three_channels, fixed_point, paint_features,
                       smooth_curve, tinted)

# Skin albedos (BGR) from light to dark; a face gets a random blend of two neighbours.
SKIN_TONES = np.array([[0.66, 0.76, 0.93], [0.55, 0.66, 0.86], [0.42, 0.55, 0.78],
                       [0.30, 0.42, 0.62], [0.20, 0.28, 0.42], [0.14, 0.19, 0.30]])
HAIR_TONES = np.array([[0.05, 0.05, 0.06], [0.08, 0.12, 0.18], [0.12, 0.22, 0.35],
                       [0.35, 0.58, 0.75], [0.10, 0.22, 0.55], [0.62, 0.62, 0.64]])
IRIS_TONES = np.array([[0.06, 0.14, 0.25], [0.10, 0.22, 0.36], [0.55, 0.40, 0.20],
                       [0.35, 0.45, 0.30], [0.05, 0.07, 0.10]])
BACKGROUND_DEPTH = -1e6
# Depth (mm) behind the median of its 5 x 5 neighbourhood that marks a splatted pixel as seen
# through a hole in the surface in front.
POKE_THROUGH_MM = 8.0
def _colour(rng, low=0.0, high=1.0):
    return rng.uniform(low, high, 3).astype(np.float32)


def _noise_texture(rng, size, cells, channels=3):
    """Smooth random texture: a few random cells enlarged."""
    small = rng.rand(cells, cells, channels).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR).reshape(
        size, size, channels)


def background(rng, size):
    """Cluttered background: gradient, smooth texture and random shapes, optionally blurred."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, stop = _colour(rng), _colour(rng)
    image = tinted(1 - ramp, start) + tinted(ramp, stop)
    texture = _noise_texture(rng, size, int(rng.randint(3, 12)))
    image = image * np.float32(1 - 0.5 * rng.rand()) + texture * np.float32(0.5 * rng.rand())
    image = np.ascontiguousarray(np.clip(image, 0, 1), dtype=np.float32)
    for _ in range(rng.randint(3, 16)):
        colour = tuple(float(c) for c in _colour(rng))
        kind = rng.randint(5)
        centre = tuple(int(v) for v in rng.randint(-size // 4, size + size // 4, 2))
        if kind == 0:
            corner = tuple(int(v) for v in rng.randint(-size // 4, size + size // 4, 2))
            cv2.rectangle(image, centre, corner, colour, -1)
        elif kind == 1:
            cv2.circle(image, centre, int(rng.randint(5, size // 3)), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            axes = tuple(int(v) for v in rng.randint(5, size // 3, 2))
            cv2.ellipse(image, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1,
                        cv2.LINE_AA)
        elif kind == 3:
            end = tuple(int(v) for v in rng.randint(0, size, 2))
            cv2.line(image, centre, end, colour, int(rng.randint(1, 12)), cv2.LINE_AA)
        else:
            polygon = rng.randint(-size // 4, size + size // 4, (int(rng.randint(3, 7)), 2))
            cv2.fillPoly(image, [polygon.astype(np.int32)], colour, cv2.LINE_AA)
    if rng.rand() < 0.6:
        # Out of focus: blur at half size (same look, a quarter of the work).
        half = cv2.resize(image, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
        half = cv2.GaussianBlur(half, (0, 0), rng.uniform(0.25, 2.0))
        image = cv2.resize(half, (size, size), interpolation=cv2.INTER_LINEAR)
    return image


def _splat(columns, rows, depth, values, size):
    """Z-buffered point splat: per pixel of a size x size canvas, the values (N, C) of the
    nearest point. Returns (canvas (size, size, C), depth map, coverage mask)."""
    column = np.floor(columns + 0.5).astype(np.int64)
    row = np.floor(rows + 0.5).astype(np.int64)
    inside = (column >= 0) & (column < size) & (row >= 0) & (row < size)
    index = np.flatnonzero(inside)
    if index.size >= 1 << 20 or size * size >= 1 << 23:
        raise ValueError('splat of %d points on %d px is too large for its sort key'
                         % (index.size, size))
    pixel = row[index] * size + column[index]
    # One int64 sort orders by pixel, then nearest first: key = pixel | far-ness | index.
    near = depth[index]
    farness = ((near.max() - near) / max(float(np.ptp(near)), 1e-6) * 0xFFFFF).astype(np.int64)
    key = (pixel << 40) | (farness << 20) | np.arange(index.size, dtype=np.int64)
    key.sort()
    sorted_pixel = key >> 40
    first = np.ones(key.size, dtype=bool)
    first[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
    winners = index[key[first] & 0xFFFFF]
    flat_pixels = sorted_pixel[first]
    canvas = np.zeros((size * size, values.shape[1]), np.float32)
    canvas[flat_pixels] = values[winners]
    depth_map = np.full(size * size, BACKGROUND_DEPTH, np.float32)
    depth_map[flat_pixels] = depth[winners]
    mask = np.zeros(size * size, np.float32)
    mask[flat_pixels] = 1.0
    return (canvas.reshape(size, size, -1), depth_map.reshape(size, size),
            mask.reshape(size, size))


class Lighting:
    """A random directional light with ambient term and a little specular sheen."""

    def __init__(self, rng):
        direction = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.6), rng.uniform(0.3, 1.2)])
        self.direction = direction / np.linalg.norm(direction)
        self.ambient = rng.uniform(0.25, 0.6)
        self.wrap = rng.uniform(0.0, 0.4)
        self.colour = 1.0 + rng.uniform(-0.12, 0.12, 3)
        self.specular = rng.uniform(0.0, 0.18)
        self.gain = rng.uniform(0.85, 1.3)

    def shade(self, normals):
        """Diffuse shade and specular sheen per unit normal (3, N) (camera space, viewer
        along +z)."""
        facing = self.direction.astype(np.float32) @ normals
        diffuse = np.maximum((facing + self.wrap) / (1.0 + self.wrap), 0.0)
        shade = self.gain * (self.ambient + (1.0 - self.ambient) * diffuse)
        halfway = self.direction + [0.0, 0.0, 1.0]
        halfway = (halfway / np.linalg.norm(halfway)).astype(np.float32)
        sheen = self.specular * np.maximum(halfway @ normals, 0.0) ** 24
        return shade, sheen


class Camera:
    """Camera space (mm) -> record-image pixels: pin-hole projection, then the record
    similarity transform."""

    def __init__(self, distance, matrix):
        self.distance, self.matrix = distance, np.asarray(matrix, dtype=np.float64)
        self.pixels_per_mm = float(np.linalg.norm(self.matrix[:, 0]))

    def planes(self, points):
        """(3, ...) camera-space points -> pixel (columns, rows), in the points' precision."""
        points = np.asarray(points)
        dtype = np.float32 if points.dtype == np.float32 else np.float64
        m = self.matrix.astype(dtype)
        u, v = project(points, dtype(self.distance))
        return m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]

    def __call__(self, points):
        """(3, K) camera-space points -> (K, 2) x/y pixels."""
        return np.stack(self.planes(points), axis=-1)


def _material_channels(rng, head):
    """Per-point material of head and neck as columns: skin gain, hair weight, hair gain,
    cloth weight."""
    rows, cols = head.skin['shape']
    blotches = _noise_texture(rng, 64, 6, 1)[..., 0]
    skin_gain = 1.0 + 0.12 * (cv2.resize(blotches, (cols, rows)) - 0.5)
    streaks = cv2.resize(rng.rand(6, 160).astype(np.float32), (cols, rows))
    neck_points = len(head.neck['cloth'])
    return np.stack([
        np.concatenate([skin_gain.ravel(), 0.92 * head.neck['occlusion']]),
        np.concatenate([head.skin['hair'], np.zeros(neck_points, np.float32)]),
        np.concatenate([0.6 + 0.8 * streaks.ravel(), np.ones(neck_points, np.float32)]),
        np.concatenate([np.zeros(len(head.skin['hair']), np.float32), head.neck['cloth']]),
    ], axis=1).astype(np.float32)


def _albedo(planes, style):
    """Albedo (H, W, 3) from splatted material planes."""
    skin_gain, hair, hair_gain, cloth = planes
    skin = skin_gain * (1.0 - hair - cloth)
    hair = hair * hair_gain
    return cv2.merge([skin * np.float32(style['skin'][k]) + hair * np.float32(style['hair'][k])
                      + cloth * np.float32(style['cloth'][k]) for k in range(3)])


def render_surfaces(head, camera, lighting, style, rng, size):
    """Splat head and neck at half resolution and bring the maps up to size x size.

    Returns albedo (size, size, 3), shade (size, size, 3), sheen, depth and alpha maps."""
    materials = _material_channels(rng, head)
    positions = np.concatenate([head.skin['positions'], head.neck['positions']], axis=1)
    normals = np.concatenate([head.skin['normals'], head.neck['normals']], axis=1)
    facing = (normals[0] * -positions[0] + normals[1] * -positions[1]
              + normals[2] * (np.float32(camera.distance) - positions[2])) > 0
    positions, normals, materials = positions[:, facing], normals[:, facing], materials[facing]
    shade, sheen = lighting.shade(normals)
    half = size // 2
    # Half-resolution pixel centres sit at (full + 0.5) / 2 - 0.5.
    columns, rows = camera.planes(positions)
    values = np.concatenate([materials, shade[:, None], sheen[:, None]], axis=1)
    canvas, depth, mask = _splat(columns * np.float32(0.5) - np.float32(0.25),
                                 rows * np.float32(0.5) - np.float32(0.25), positions[2],
                                 values, half)
    # A pixel far behind most of its neighbourhood shows something through a gap between the
    # points of the surface in front (a sampling hole, not an occlusion): treat it as empty.
    mask[depth < cv2.medianBlur(depth, 5) - POKE_THROUGH_MM] = 0.0
    # Close pinholes between splatted points; fill them (and a rim outside the silhouette, so
    # the edge does not blend with black) with the average of their covered neighbours.
    kernel = np.ones((5, 5), np.uint8)
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    counts = np.maximum(cv2.blur(mask, (5, 5)), 1e-6)
    covered = mask > 0
    planes = []
    for channel in cv2.split(canvas):
        spread = cv2.blur(channel * mask, (5, 5)) / counts
        planes.append(np.where(covered, channel, spread))
    depth = np.where(covered, depth, cv2.dilate(depth, kernel))
    full = (size, size)
    albedo = cv2.resize(_albedo(planes[:4], style), full, interpolation=cv2.INTER_LINEAR)
    shade = cv2.resize(tinted(planes[4], lighting.colour), full, interpolation=cv2.INTER_LINEAR)
    sheen, alpha = cv2.split(cv2.resize(cv2.merge([planes[5], closed]), full,
                                        interpolation=cv2.INTER_LINEAR))
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    depth = cv2.resize(depth, full, interpolation=cv2.INTER_NEAREST)
    return albedo, shade, sheen, depth, alpha


def sample_style(rng):
    """Colours of one face: skin, hair, brows, lips, irises, clothes."""
    tone = rng.randint(len(SKIN_TONES) - 1)
    blend = rng.rand()
    skin = (SKIN_TONES[tone] * (1 - blend) + SKIN_TONES[tone + 1] * blend) \
        * (1.0 + rng.uniform(-0.06, 0.06, 3))
    hair = HAIR_TONES[rng.randint(len(HAIR_TONES))] * rng.uniform(0.8, 1.2)
    return {
        'skin': skin, 'hair': hair,
        'brow': np.minimum(hair, skin * 0.45) * rng.uniform(0.6, 1.0),
        'brow_thickness': rng.uniform(3.5, 8.0), 'brow_density': rng.uniform(0.55, 0.95),
        'lips': skin * np.array([0.72, 0.66, 0.98]) * rng.uniform(0.8, 1.05),
        'iris': IRIS_TONES[rng.randint(len(IRIS_TONES))] * rng.uniform(0.8, 1.2),
        'sclera': np.array([0.72, 0.76, 0.80]) * rng.uniform(0.8, 1.0),
        'cloth': _colour(rng, 0.05, 0.95),
        'teeth': float(rng.rand() < 0.6),
        'folds': rng.uniform(0.1, 0.6),
    }


def draw_torso(scene, head, camera, lighting, style):
    """Shoulders and chest in the clothes' colour, darker towards their outline (rounded)."""
    size = scene.shape[0]
    half = size // 2
    mask = np.zeros((half, half), np.float32)
    outline = camera(head.torso) * 0.5 - 0.25
    cv2.fillPoly(mask, [fixed_point(outline, 0)], 1.0, cv2.LINE_AA, SUBPIXEL_SHIFT)
    quarter = cv2.resize(mask, (half // 2, half // 2), interpolation=cv2.INTER_AREA)
    roundness = cv2.GaussianBlur(quarter, (0, 0), half / 24.0)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    roundness = cv2.resize(roundness, (size, size), interpolation=cv2.INTER_LINEAR)
    facing = np.array([[0.0], [-0.3], [1.0]], np.float32) / np.float32(math.hypot(0.3, 1.0))
    shade, _ = lighting.shade(facing)
    colour = style['cloth'] * lighting.colour * float(shade[0])
    torso = tinted(0.55 + 0.45 * roundness, colour)
    cover = as_three_channels(mask)
    scene[:] = scene * (1 - cover) + torso * cover


def draw_long_hair(scene, outline, camera, lighting, style, rng):
    """Long hair behind head and neck: a smoothed outline filled with streaky hair colour."""
    size = scene.shape[0]
    mask = np.zeros((size, size), np.float32)
    outline_px = smooth_curve(camera(outline), closed=True)
    cv2.fillPoly(mask, [fixed_point(outline_px, 0)], 1.0, cv2.LINE_AA, SUBPIXEL_SHIFT)
    streaks = cv2.resize(rng.rand(4, 48).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    facing = np.array([[0.0], [0.0], [1.0]], np.float32)
    shade, _ = lighting.shade(facing)
    colour = style['hair'] * lighting.colour * float(shade[0]) * 0.8
    cover = as_three_channels(mask)
    scene[:] = scene * (1 - cover) + tinted(0.5 + 0.7 * streaks, colour) * cover


def _ear_shade(outline, lighting):
    count = outline.shape[1]
    normal = np.cross(outline[:, count // 4] - outline[:, 0],
                      outline[:, count // 2] - outline[:, count // 4])
    normal = normal / max(np.linalg.norm(normal), 1e-6)
    normal = normal if normal[2] >= 0 else -normal
    shade, _ = lighting.shade(normal[:, None].astype(np.float32))
    return float(shade[0]) * lighting.colour


def draw_occluder(image, rng, landmarks_px):
    """At most one random occluder over the face: a bar, a disc, a hand or sunglasses."""
    face = float(np.ptp(landmarks_px, axis=0).max())
    kind = rng.choice(['none', 'bar', 'disc', 'hand', 'glasses'], p=[0.62, 0.1, 0.1, 0.12, 0.06])
    anchor = landmarks_px[rng.randint(len(landmarks_px))] + rng.normal(0, 0.08 * face, 2)
    colour = tuple(float(c) for c in _colour(rng))
    if kind == 'bar':
        angle = rng.uniform(0, np.pi)
        direction = np.array([math.cos(angle), math.sin(angle)]) * 2 * face
        cv2.line(image, tuple(fixed_point(anchor - direction, 0)),
                 tuple(fixed_point(anchor + direction, 0)), colour,
                 int(rng.uniform(0.06, 0.2) * face), cv2.LINE_AA, SUBPIXEL_SHIFT)
    elif kind == 'disc':
        cv2.circle(image, tuple(fixed_point(anchor, 0)),
                   int(rng.uniform(0.08, 0.25) * face * (1 << SUBPIXEL_SHIFT)),
                   colour, -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
    elif kind == 'hand':
        _draw_hand(image, rng, anchor, face)
    elif kind == 'glasses':
        lens = tuple(float(c) for c in _colour(rng, 0.0, 0.25))
        centres = [landmarks_px[RIGHT_EYE].mean(axis=0), landmarks_px[LEFT_EYE].mean(axis=0)]
        width = 0.42 * np.linalg.norm(centres[1] - centres[0])
        tilt = math.degrees(math.atan2(*(centres[1] - centres[0])[::-1]))
        for centre in centres:
            box = (tuple(centre), (2 * width, 1.4 * width), tilt)
            cv2.ellipse(image, box, lens, -1, cv2.LINE_AA)
            cv2.ellipse(image, box, colour, 2, cv2.LINE_AA)
        cv2.line(image, tuple(fixed_point(centres[0] + (centres[1] - centres[0]) * 0.3, 0)),
                 tuple(fixed_point(centres[0] + (centres[1] - centres[0]) * 0.7, 0)), colour, 3,
                 cv2.LINE_AA, SUBPIXEL_SHIFT)


def _draw_hand(image, rng, anchor, face):
    """A hand-like blob: a palm and four fingers, skin coloured, lit from one side."""
    skin = SKIN_TONES[rng.randint(len(SKIN_TONES))] * rng.uniform(0.8, 1.1)
    angle = rng.uniform(0, 2 * np.pi)
    forward = np.array([math.cos(angle), math.sin(angle)])
    side = np.array([-forward[1], forward[0]])
    palm = 0.22 * face * rng.uniform(0.8, 1.2)
    size = image.shape[0]
    reach = 3.0 * palm
    low = np.floor(anchor - reach).astype(int).clip(0, size)
    high = np.ceil(anchor + reach).astype(int).clip(0, size)
    if np.any(high - low < 2):
        return
    region = image[low[1]:high[1], low[0]:high[0]]
    centre = anchor - low
    layer = np.zeros(region.shape[:2], np.float32)
    cv2.ellipse(layer, (tuple(centre - forward * palm), (2.0 * palm, 2.2 * palm),
                        math.degrees(angle)), 1.0, -1, cv2.LINE_AA)
    for finger in range(4):
        base = centre + side * (finger - 1.5) * 0.45 * palm
        tip = base + forward * palm * rng.uniform(1.1, 1.6) * (1.0 - 0.15 * abs(finger - 1.5))
        cv2.line(layer, tuple(fixed_point(base, 0)), tuple(fixed_point(tip, 0)), 1.0,
                 int(0.38 * palm), cv2.LINE_AA, SUBPIXEL_SHIFT)
    yy, xx = np.mgrid[0:layer.shape[0], 0:layer.shape[1]].astype(np.float32)
    light = 0.75 + 0.25 * np.tanh(((xx - centre[0]) * side[0] + (yy - centre[1]) * side[1])
                                  / palm)
    alpha = as_three_channels(layer)
    region[:] = region * (1 - alpha) + tinted(light, skin) * alpha


def degrade(image, rng):
    """Camera effects on a float image: exposure/gamma, blur, low resolution, noise, JPEG."""
    image = np.clip(image * np.float32(rng.uniform(0.8, 1.2))
                    + np.float32(rng.uniform(-0.06, 0.06)), 0, 1)
    image = cv2.pow(image, rng.uniform(0.8, 1.25))
    if rng.rand() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.6))
    elif rng.rand() < 0.1:
        length = int(rng.randint(4, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                           rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    size = image.shape[0]
    if rng.rand() < 0.15:
        small = int(size * rng.uniform(0.3, 0.6))
        image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA),
                           (size, size), interpolation=cv2.INTER_LINEAR)
    # Sensor noise, uniform (random bytes are much cheaper to draw than normal deviates).
    noise = rng.randint(0, 256, image.shape, dtype=np.uint8).astype(np.float32)
    spread = rng.uniform(0.0, 0.035) * 255.0 * math.sqrt(12.0) / 256.0
    image = image * 255.0 + 0.5 + (noise - 127.5) * np.float32(spread)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.rand() < 0.35:
        ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY,
                                                   int(rng.randint(20, 75))])
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def render(head, camera, rng, size):
    """The full picture of `head` through `camera`: size x size BGR uint8."""
    style = sample_style(rng)
    lighting = Lighting(rng)
    scene = background(rng, size)
    albedo, shade, sheen, depth, alpha = render_surfaces(head, camera, lighting, style, rng,
                                                         size)
    ears = paint_features(head, camera, albedo, depth, style)
    for (low, high, ear_alpha), outline in ears:
        window = (slice(low[1], high[1]), slice(low[0], high[0]))
        cover = as_three_channels(ear_alpha * (1.0 - alpha[window]))
        ear_shade = tinted(np.ones_like(ear_alpha), _ear_shade(outline, lighting))
        shade[window] += (ear_shade - shade[window]) * cover
        alpha[window] = np.maximum(alpha[window], ear_alpha)
    draw_torso(scene, head, camera, lighting, style)
    if head.long_hair is not None:
        draw_long_hair(scene, head.long_hair, camera, lighting, style, rng)
    alpha3 = as_three_channels(alpha)
    image = scene * (1 - alpha3) + (albedo * shade + as_three_channels(sheen)) * alpha3
    draw_occluder(image, rng, camera(head.landmarks))
    return degrade(image.astype(np.float32), rng)
