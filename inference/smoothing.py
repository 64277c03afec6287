"""Temporal smoothing of landmark tracks: the One-Euro filter (Casiez, Roussel and Vogel, "1 Euro
Filter: A Simple Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012).

It is a first-order low-pass filter whose cutoff frequency rises with the signal's speed. A face
that holds still gets the low cutoff `min_cutoff` (Hz), which removes the frame-to-frame jitter
of the landmarks; a moving one gets `min_cutoff + beta * speed` (speed in pixels per second),
which keeps the lag behind the motion short. The speed is the frame-to-frame derivative,
itself low-pass filtered at `d_cutoff` (1 Hz, the paper's recommendation). Each coordinate is
filtered on its own, as in the paper.
"""
import math

import numpy as np

from console import check_number

# Defaults tuned with scripts/bench_video.py on the shipped model and the four fixture faces at
# 25 frames per second (docs/benchmarks.md, "Video tracking"): frame-to-frame jitter halved or
# better, and under a frame of lag at steady speeds from 1 pixel per frame up.
DEFAULT_MIN_CUTOFF = 1.5
DEFAULT_BETA = 0.15
DERIVATIVE_CUTOFF = 1.0


def smoothing_factor(cutoff, interval):
    """Weight of a new sample in a first-order low-pass filter of `cutoff` Hz sampled every
    `interval` seconds (1 / (1 + tau / interval), tau = 1 / (2 pi cutoff))."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / interval)


class OneEuroFilter:
    """`filter(value, timestamp)` -> the smoothed value (an array of any fixed shape, such as
    (68, 2) landmarks); timestamps in seconds, increasing. `reset()` forgets the past, so the
    next value is passed through unchanged (a new track)."""

    def __init__(self, min_cutoff=DEFAULT_MIN_CUTOFF, beta=DEFAULT_BETA,
                 d_cutoff=DERIVATIVE_CUTOFF):
        check_number('One-Euro min_cutoff', min_cutoff, above=0)
        check_number('One-Euro beta', beta, minimum=0)
        check_number('One-Euro d_cutoff', d_cutoff, above=0)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self):
        self._time = self._raw = self._smoothed = self._speed = None

    def __call__(self, value, timestamp):
        value = np.array(value, dtype=np.float64)
        if self._smoothed is None:
            self._speed = np.zeros_like(value)
            self._smoothed = value
        else:
            interval = float(timestamp) - self._time
            if not interval > 0:
                raise ValueError('One-Euro filter: timestamps must increase, got %s after %s'
                                 % (timestamp, self._time))
            if value.shape != self._smoothed.shape:
                raise ValueError('One-Euro filter: value shape changed from %s to %s'
                                 % (self._smoothed.shape, value.shape))
            # The derivative of the raw signal, as in the authors' reference code.
            speed = (value - self._raw) / interval
            weight = smoothing_factor(self.d_cutoff, interval)
            self._speed = weight * speed + (1.0 - weight) * self._speed
            weight = smoothing_factor(self.min_cutoff + self.beta * np.abs(self._speed),
                                      interval)
            self._smoothed = weight * value + (1.0 - weight) * self._smoothed
        self._time, self._raw = float(timestamp), value
        return self._smoothed.copy()
