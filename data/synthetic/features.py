"""Drawing primitives of the synthetic renderer and the facial features it paints.

Features (eyes, brows, nostrils, nasolabial folds, lips, ears) are painted into the albedo map
at full resolution, each only where the splatted skin in front of it does not hide it, so the
far eye disappears behind the nose as the head turns. See data/synthetic/render.py.
"""
import math

import cv2
import numpy as np

from .face import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

# A feature stays visible unless the skin in front of it is nearer by more than this (mm).
VISIBILITY_TOLERANCE = 9.0
# cv2 drawing with 4 fractional bits: sub-pixel precise, anti-aliased outlines.
SUBPIXEL_SHIFT = 4


def as_three_channels(image):
    """3-channel copy of a single-channel map. Broadcasting (H, W, 1) against (H, W, 3) is
    many times slower in numpy than multiplying equal shapes, so maps are expanded first."""
    return cv2.merge([image, image, image])


def tinted(plane, colour):
    """(H, W) map times a BGR colour -> (H, W, 3)."""
    return cv2.merge([plane * np.float32(c) for c in colour])


def smooth_curve(points, closed=False, iterations=2):
    """Chaikin corner cutting; an open curve keeps its end points (eye and mouth corners)."""
    pts = np.asarray(points, np.float64)
    for _ in range(iterations):
        following = np.roll(pts, -1, axis=0) if closed else pts[1:]
        current = pts if closed else pts[:-1]
        cut = np.empty((2 * len(current), 2))
        cut[0::2] = 0.75 * current + 0.25 * following
        cut[1::2] = 0.25 * current + 0.75 * following
        pts = cut if closed else np.concatenate([pts[:1], cut, pts[-1:]])
    return pts


def fixed_point(points, origin):
    """Points (..., 2) relative to origin as cv2 fixed-point coordinates (SUBPIXEL_SHIFT)."""
    return np.round((np.asarray(points) - origin) * (1 << SUBPIXEL_SHIFT)).astype(np.int32)


class FeaturePainter:
    """Paints facial features into the full-resolution albedo map where they are visible."""

    def __init__(self, albedo, depth, camera, style):
        self.albedo, self.depth, self.camera, self.style = albedo, depth, camera, style
        self.mm = camera.pixels_per_mm

    def paint(self, points_px, feature_z, draw, margin_mm=6.0, tolerance=VISIBILITY_TOLERANCE,
              soften=0.0):
        """Run draw(layer, mask, origin) on the region around points_px; blend the layer into
        the albedo where the mask is set and the skin is not nearer than feature_z."""
        size = self.albedo.shape[0]
        margin = margin_mm * self.mm
        low = np.maximum(np.floor(points_px.min(axis=0) - margin).astype(int), 0)
        high = np.minimum(np.ceil(points_px.max(axis=0) + margin).astype(int), size)
        if np.any(high - low < 2):
            return None
        region = self.albedo[low[1]:high[1], low[0]:high[0]]
        layer = region.copy()
        mask = np.zeros(region.shape[:2], np.float32)
        draw(layer, mask, low.astype(np.float64))
        if soften > 0:
            mask = cv2.GaussianBlur(mask, (0, 0), soften * self.mm)
        visible = self.depth[low[1]:high[1], low[0]:high[0]] <= feature_z + tolerance
        alpha = mask * visible
        alpha3 = as_three_channels(alpha)
        region[:] = region * (1 - alpha3) + layer * alpha3
        return (low, high, alpha)

    def eye(self, lids_px, lids_z, iris_px, brow_px):
        style, mm = self.style, self.mm
        upper = smooth_curve(lids_px[[0, 1, 2, 3]])
        lower = smooth_curve(lids_px[[3, 4, 5, 0]])
        opening = np.concatenate([upper, lower[1:-1]])
        iris_centre = iris_px.mean(axis=0)
        up = brow_px.mean(axis=0) - lids_px.mean(axis=0)
        up /= max(np.linalg.norm(up), 1e-6)
        crease = upper + up * 2.5 * mm * np.sin(np.linspace(0, np.pi, len(upper)))[:, None]

        def draw(layer, mask, origin):
            skin = tuple(float(c) for c in style['skin'] * 0.72)
            cv2.polylines(layer, [fixed_point(crease, origin)], False, skin,
                          max(1, int(0.7 * mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.polylines(mask, [fixed_point(crease, origin)], False, 0.5,
                          max(1, int(0.7 * mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(layer, [fixed_point(opening, origin)], tuple(style['sclera']),
                         cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(mask, [fixed_point(opening, origin)], 1.0, cv2.LINE_AA, SUBPIXEL_SHIFT)
            iris = fixed_point(iris_px, origin)
            cv2.fillPoly(layer, [iris], tuple(style['iris']), cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.polylines(layer, [iris], True, tuple(style['iris'] * 0.45),
                          max(1, int(0.5 * mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
            pupil = iris_centre + (iris_px - iris_centre) * 0.42
            cv2.fillPoly(layer, [fixed_point(pupil, origin)], (0.02, 0.02, 0.02), cv2.LINE_AA,
                         SUBPIXEL_SHIFT)
            glint = iris_centre + (iris_px[0] - iris_centre) * 0.3 - up * 0.15 * (
                np.linalg.norm(iris_px[0] - iris_centre))
            cv2.circle(layer, tuple(fixed_point(glint, origin)),
                       int(0.5 * mm * (1 << SUBPIXEL_SHIFT)), (1.0, 1.0, 1.0), -1, cv2.LINE_AA,
                       SUBPIXEL_SHIFT)
            # The upper lid shades the top of the eyeball.
            cv2.polylines(layer, [fixed_point(upper, origin)], False,
                          tuple(float(c) for c in style['sclera'] * 0.55),
                          max(1, int(round(2.2 * mm))), cv2.LINE_AA, SUBPIXEL_SHIFT)
            lash = tuple(float(c) for c in np.minimum(style['brow'], 0.15))
            for curve, width in ((upper, 1.1), (lower, 0.4)):
                thickness = max(1, int(round(width * mm)))
                colour = lash if width > 1 else tuple(float(c) for c in style['skin'] * 0.6)
                cv2.polylines(layer, [fixed_point(curve, origin)], False, colour, thickness,
                              cv2.LINE_AA, SUBPIXEL_SHIFT)
                cv2.polylines(mask, [fixed_point(curve, origin)], False, 1.0, thickness,
                              cv2.LINE_AA, SUBPIXEL_SHIFT)
        self.paint(lids_px, float(lids_z.mean()), draw, soften=0.15)

    def brow(self, brow_px, brow_z, outer_first):
        style, mm = self.style, self.mm
        profile = np.array([0.45, 0.75, 0.95, 1.05, 1.0])
        if not outer_first:
            profile = profile[::-1]
        half = 0.5 * style['brow_thickness'] * mm * profile
        tangent = np.gradient(brow_px, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
        edges = np.concatenate([brow_px + normal * half[:, None],
                                (brow_px - normal * half[:, None])[::-1]])
        outline = smooth_curve(edges, closed=True)

        def draw(layer, mask, origin):
            cv2.fillPoly(layer, [fixed_point(outline, origin)], tuple(style['brow']),
                         cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(mask, [fixed_point(outline, origin)], float(style['brow_density']),
                         cv2.LINE_AA, SUBPIXEL_SHIFT)
        self.paint(brow_px, float(brow_z.mean()), draw, soften=0.35)

    def nostril(self, wing_px, base_px, middle_px, z):
        centre = 0.45 * wing_px + 0.35 * base_px + 0.2 * middle_px
        along = middle_px - wing_px
        length = np.linalg.norm(along)
        angle = math.degrees(math.atan2(along[1], along[0]))
        colour = tuple(float(c) for c in self.style['skin'] * 0.22)

        def draw(layer, mask, origin):
            box = (tuple(centre - origin), (0.55 * length, 0.28 * length), angle)
            cv2.ellipse(layer, box, colour, -1, cv2.LINE_AA)
            cv2.ellipse(mask, box, 0.85, -1, cv2.LINE_AA)
        self.paint(np.stack([wing_px, middle_px]), z, draw, margin_mm=2.0, soften=0.3)

    def mouth(self, lips_px, lips_z):
        style, mm = self.style, self.mm
        outer, inner = lips_px[:12], lips_px[12:]
        upper_outer = smooth_curve(outer[0:7])
        lower_outer = smooth_curve(outer[[6, 7, 8, 9, 10, 11, 0]])
        upper_inner = smooth_curve(inner[[0, 1, 2, 3, 4]])
        lower_inner = smooth_curve(inner[[4, 5, 6, 7, 0]])
        gap = np.linalg.norm(inner[6] - inner[2])
        teeth_depth = min(0.35 * gap, 3.0 * mm) * style['teeth']
        down = lower_outer[len(lower_outer) // 2] - upper_outer[len(upper_outer) // 2]
        down /= max(np.linalg.norm(down), 1e-6)
        upper_lip = np.concatenate([upper_outer, upper_inner[::-1]])
        lower_lip = np.concatenate([lower_outer, lower_inner[::-1]])
        lips_outline = np.concatenate([upper_outer, lower_outer[1:-1]])

        def draw(layer, mask, origin):
            lips = style['lips']
            cv2.fillPoly(layer, [fixed_point(upper_lip, origin)], tuple(lips * 0.85),
                         cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(layer, [fixed_point(lower_lip, origin)], tuple(lips), cv2.LINE_AA,
                         SUBPIXEL_SHIFT)
            inside = fixed_point(np.concatenate([upper_inner, lower_inner[1:-1]]), origin)
            cv2.fillPoly(layer, [inside], (0.05, 0.04, 0.12), cv2.LINE_AA, SUBPIXEL_SHIFT)
            if gap > 2.0 * mm and teeth_depth > 0:
                teeth = np.concatenate([upper_inner, (upper_inner + down * teeth_depth)[::-1]])
                cv2.fillPoly(layer, [fixed_point(teeth, origin)], (0.72, 0.80, 0.84),
                             cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.polylines(layer, [fixed_point(upper_inner, origin)], False, tuple(lips * 0.45),
                          max(1, int(0.6 * mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(mask, [fixed_point(lips_outline, origin)], 1.0, cv2.LINE_AA,
                         SUBPIXEL_SHIFT)
        self.paint(lips_px, float(lips_z.mean()), draw, tolerance=VISIBILITY_TOLERANCE + 4,
                   soften=0.2)

    def fold(self, wing_px, corner_px, nose_tip_px, z):
        """Nasolabial fold: a soft crease from beside the nostril wing to beside the mouth
        corner, bowed away from the nose."""
        away = wing_px - nose_tip_px
        away /= max(np.linalg.norm(away), 1e-6)
        start = wing_px + away * 1.5 * self.mm
        end = corner_px + away * 2.5 * self.mm
        bow = start + (end - start) * 0.5 + away * 2.5 * self.mm
        crease = smooth_curve(np.stack([start, bow, end]), iterations=3)
        colour = tuple(float(c) for c in self.style['skin'] * 0.7)
        strength = float(self.style['folds'])

        def draw(layer, mask, origin):
            cv2.polylines(layer, [fixed_point(crease, origin)], False, colour,
                          max(1, int(1.2 * self.mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.polylines(mask, [fixed_point(crease, origin)], False, strength,
                          max(1, int(1.2 * self.mm)), cv2.LINE_AA, SUBPIXEL_SHIFT)
        self.paint(crease, z, draw, margin_mm=3.0, soften=0.8)

    def ear(self, outline_px, z):
        centre = outline_px.mean(axis=0)
        inner = centre + (outline_px - centre) * 0.55 + (outline_px[0] - centre) * 0.15
        skin = self.style['skin']

        def draw(layer, mask, origin):
            cv2.fillPoly(layer, [fixed_point(outline_px, origin)], tuple(skin * 0.95),
                         cv2.LINE_AA, SUBPIXEL_SHIFT)
            cv2.fillPoly(layer, [fixed_point(inner, origin)], tuple(skin * 0.8), cv2.LINE_AA,
                         SUBPIXEL_SHIFT)
            cv2.fillPoly(mask, [fixed_point(outline_px, origin)], 1.0, cv2.LINE_AA, SUBPIXEL_SHIFT)
        return self.paint(outline_px, z, draw, margin_mm=2.0)


def paint_features(head, camera, albedo, depth, style):
    """Ears, brows, eyes, nostrils and lips, far ones first. Returns ((low, high, alpha),
    outline) of each painted ear: ears reach outside the skin, so the caller must shade and
    cover them."""
    painter = FeaturePainter(albedo, depth, camera, style)
    pixels = camera(head.landmarks)
    z = head.landmarks[2]
    ears = []
    for outline in sorted(head.ears, key=lambda ear: ear[2].mean()):
        painted = painter.ear(camera(outline), float(outline[2].mean()))
        if painted is not None:
            ears.append((painted, outline))
    jobs = [
        (z[RIGHT_BROW].mean(), lambda: painter.brow(pixels[RIGHT_BROW], z[RIGHT_BROW], True)),
        (z[LEFT_BROW].mean(), lambda: painter.brow(pixels[LEFT_BROW], z[LEFT_BROW], False)),
        (z[RIGHT_EYE].mean(), lambda: painter.eye(pixels[RIGHT_EYE], z[RIGHT_EYE],
                                                  camera(head.irises[0]), pixels[RIGHT_BROW])),
        (z[LEFT_EYE].mean(), lambda: painter.eye(pixels[LEFT_EYE], z[LEFT_EYE],
                                                 camera(head.irises[1]), pixels[LEFT_BROW])),
        (z[32], lambda: painter.nostril(pixels[31], pixels[32], pixels[33], float(z[32]))),
        (z[34], lambda: painter.nostril(pixels[35], pixels[34], pixels[33], float(z[34]))),
        (z[48:68].mean(), lambda: painter.mouth(pixels[48:68], z[48:68])),
        (z[[31, 48]].mean(), lambda: painter.fold(pixels[31], pixels[48], pixels[30],
                                                  float(z[[31, 48]].mean()))),
        (z[[35, 54]].mean(), lambda: painter.fold(pixels[35], pixels[54], pixels[30],
                                                  float(z[[35, 54]].mean()))),
    ]
    for _, job in sorted(jobs, key=lambda item: item[0]):
        job()
    return ears
