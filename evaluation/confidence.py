"""How well the heatmaps' peak confidence (data.codec.peak_confidence) tells a face from no
face: the confidence of detected faces against that of the same faces' crops moved one face
width sideways, onto background or hair. Video tracking (FaceAligner.track) re-detects when
a tracked crop's confidence falls below a threshold; these two samples are what that
threshold is chosen from."""
import logging
from dataclasses import dataclass, field

import numpy as np

from console import progress as progress_bar
from data.images import read_image

log = logging.getLogger(__name__)


@dataclass
class ConfidenceSample:
    """`on_face`: per photo with a face, its largest detected face's confidence after the
    refinement pass (as FaceAligner answers). `off_face`: that face's landmarks moved one face
    width (their x extent) left and right, each cropped and predicted once
    (FaceAligner.align_from); a crop that degenerates is left out. `no_face`: photos where
    the detector found nothing; `skipped`: (path, reason) of unreadable files."""
    on_face: np.ndarray
    off_face: np.ndarray
    no_face: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def share_off_face_at_or_above(self, threshold):
        """Fraction of off-face crops a tracker with this threshold would take for a face."""
        return float((self.off_face >= threshold).mean()) if len(self.off_face) else float('nan')

    def share_on_face_below(self, threshold):
        """Fraction of detected faces a tracker with this threshold would drop."""
        return float((self.on_face < threshold).mean()) if len(self.on_face) else float('nan')

    def summary_lines(self, thresholds):
        lines = ['%d photos with a face, %d without, %d unreadable'
                 % (len(self.on_face), len(self.no_face), len(self.skipped))]
        if len(self.on_face):
            lines.append('on faces: %.2f-%.2f, median %.2f' % (
                self.on_face.min(), self.on_face.max(), np.median(self.on_face)))
        if len(self.off_face):
            lines.append('one face width sideways (%d crops): median %.2f' % (
                len(self.off_face), np.median(self.off_face)))
        for threshold in thresholds:
            lines.append('threshold %.2f: %5.1f%% of off-face crops at or above it, %5.1f%% '
                         'of faces below it' % (
                             threshold, 100 * self.share_off_face_at_or_above(threshold),
                             100 * self.share_on_face_below(threshold)))
        return lines


def sample_confidence(aligner, paths, progress=True):
    """ConfidenceSample of `aligner` (a FaceAligner) on the image files `paths`; unreadable
    files are skipped, counted and logged, not fatal."""
    on_face, off_face, no_face, skipped = [], [], [], []
    for path in progress_bar(paths, enabled=progress, desc='confidence', unit='photo'):
        try:
            image = read_image(path)
        except ValueError as err:
            log.warning('skipped %s', err)
            skipped.append((path, str(err)))
            continue
        faces = aligner.get_landmarks(image)
        if not faces:
            no_face.append(path)
            continue
        face = max(faces, key=lambda f: np.ptp(f.landmarks[:, 0]) * np.ptp(f.landmarks[:, 1]))
        on_face.append(face.confidence)
        width = np.ptp(face.landmarks[:, 0])
        for shift in (-width, width):
            moved = aligner.align_from(image, face.landmarks + [shift, 0.0])
            if moved is not None:
                off_face.append(moved.confidence)
    return ConfidenceSample(np.array(on_face), np.array(off_face), no_face, skipped)
