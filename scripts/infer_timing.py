"""Per-face inference timings: the original's per-face path against the library's batched
MXNet and onnxruntime (float and int8) paths, each from 128 x 128 crops to landmarks in crop
pixels."""
import os
import time
from dataclasses import dataclass

import numpy as np

from console import progress as progress_bar
import symbols
from data.shape_prior import decode_landmarks
from symbols.checkpoint import save_checkpoint

from inference.model import FlipTest, HeatmapModel
from inference.model_dir import shape_prior_for
from inference.onnx_export import onnx_model_of
from inference.onnx_model import OnnxHeatmapModel
from inference.onnx_quantize import quantize_model
from scripts.original_infer import INPUT_SIZE, PerFaceBaseline

ORIGINAL = 'original per-face (MXNet)'
UNFUSED = 'original, graph unfused'
LIBRARY_MXNET = 'library MXNet'
LIBRARY_MXNET_BF16 = 'library MXNet bf16'
LIBRARY_ONNX = 'library onnxruntime'
ONE_SESSION = ', one session'
FLIP = ', flip test'
PRIOR = ', shape prior'


@dataclass
class Timing:
    path: str
    batch: int
    wall_ms: float     # per face
    cpu_ms: float      # per face, all threads of this process

    def speedup_over(self, reference):
        """(wall, CPU) time of `reference` over this path's."""
        return reference.wall_ms / self.wall_ms, reference.cpu_ms / self.cpu_ms


def save_random_checkpoint(prefix, network, **overrides):
    """A random-weight checkpoint of a zoo network, with config `overrides` such as
    multiplier=0.5 (for timing only); returns the prefix."""
    symbol = symbols.get_symbol(network, **overrides)
    arg_params, aux_params = symbols.init_params(symbol, (1, 3, INPUT_SIZE, INPUT_SIZE))
    save_checkpoint(prefix, 0, symbol, arg_params, aux_params)
    return prefix


def time_per_face(paths, crops, rounds=1, desc=None, progress=False):
    """[(wall ms, CPU ms) per face] of each `(landmarks_of, batch)` in `paths` over `crops` in
    chunks of `batch`, after one untimed call per chunk size (binding, first-run allocations).
    The paths take turns, `rounds` passes each, so that load from other jobs on a shared
    machine spreads over all of them alike."""
    chunked = [[crops[start:start + batch] for start in range(0, len(crops), batch)]
               for _, batch in paths]
    for (landmarks_of, _), chunks in zip(paths, chunked):
        for size in sorted({len(chunk) for chunk in chunks}):
            landmarks_of(crops[:size])
    totals = np.zeros((len(paths), 2))
    turns = [index for _ in range(rounds) for index in range(len(paths))]
    for index in progress_bar(turns, desc=desc, enabled=progress):
        landmarks_of, chunks = paths[index][0], chunked[index]
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in chunks:
            landmarks_of(chunk)
        totals[index] += (time.perf_counter() - wall, time.process_time() - cpu)
    return [tuple(1000.0 * total / (rounds * len(crops))) for total in totals]


def benchmark_checkpoint(prefix, epoch=0, faces=16, batch_size=16, seed=0, progress=True,
                         bf16=False, rounds=1):
    """Timings of every path on `faces` random crops: the original per-face path (as it runs
    on MXNet 1.9, and with the unfused graph MXNet 1.3 ran), the library path with MXNet at
    batch 1 and `batch_size` (and in bf16 with `bf16`), and the same with onnxruntime, in
    float and int8. The int8 model is calibrated on the timed crops themselves: fine for
    speed, not for accuracy. When the checkpoint has its shape prior beside it
    (data/shape_prior.py), onnxruntime with the flip test is timed with it too. The paths take
    turns (`rounds` passes each, time_per_face)."""
    crops = np.random.RandomState(seed).randint(0, 256, (faces, INPUT_SIZE, INPUT_SIZE, 3))
    crops = crops.astype(np.uint8)
    baseline = PerFaceBaseline(prefix, epoch)
    unfused = PerFaceBaseline(prefix, epoch, fused=False)
    mxnet_model = HeatmapModel(prefix, epoch, batch_size=batch_size)
    float_onnx = onnx_model_of(prefix, epoch)
    onnx_model = OnnxHeatmapModel(float_onnx, batch_size=batch_size)
    # The baseline of its split batches: every chunk in the one multi-threaded session.
    one_session = OnnxHeatmapModel(float_onnx, batch_size=batch_size, workers=1)
    int8_model = OnnxHeatmapModel(quantize_model(float_onnx, crops), batch_size=batch_size)

    def library(model, prior=None):
        codec = model.codec('subpixel')
        return lambda chunk: decode_landmarks(codec, model.predict(chunk), prior)

    paths = [(ORIGINAL, baseline.landmarks, 1),
             (UNFUSED, unfused.landmarks, 1),
             (LIBRARY_MXNET, library(mxnet_model), 1),
             (LIBRARY_MXNET, library(mxnet_model), batch_size)]
    if bf16:
        bf16_model = HeatmapModel(prefix, epoch, batch_size=batch_size, dtype='bf16')
        paths += [(LIBRARY_MXNET_BF16, library(bf16_model), 1),
                  (LIBRARY_MXNET_BF16, library(bf16_model), batch_size)]
    paths += [(LIBRARY_ONNX, library(onnx_model), 1),
              (LIBRARY_ONNX, library(onnx_model), batch_size),
              (LIBRARY_ONNX + ONE_SESSION, library(one_session), batch_size),
              (LIBRARY_ONNX + ' int8', library(int8_model), 1),
              (LIBRARY_ONNX + ' int8', library(int8_model), batch_size),
              # The flip test sends each face and its mirror through the network together.
              (LIBRARY_MXNET + FLIP, library(FlipTest(mxnet_model)), 1),
              (LIBRARY_ONNX + FLIP, library(FlipTest(onnx_model)), 1),
              (LIBRARY_ONNX + ONE_SESSION + FLIP, library(FlipTest(one_session)), 1)]
    prior = shape_prior_for(prefix, epoch, 'auto')
    if prior is not None:
        paths.append((LIBRARY_ONNX + FLIP + PRIOR, library(FlipTest(onnx_model), prior), 1))
    measured = time_per_face([(landmarks_of, batch) for _, landmarks_of, batch in paths], crops,
                             rounds, desc=os.path.basename(prefix), progress=progress)
    return [Timing(name, batch, *times) for (name, _, batch), times in zip(paths, measured)]


def bf16_ratios(timings):
    """Lines comparing the bf16 library path with the float32 one at each batch size."""
    float32 = {t.batch: t for t in timings if t.path == LIBRARY_MXNET}
    return ['  bf16 / float32 (library MXNet), batch %d: %.2fx faster (CPU time %.2fx)'
            % ((t.batch,) + t.speedup_over(float32[t.batch]))
            for t in timings if t.path == LIBRARY_MXNET_BF16 and t.batch in float32]


def format_timings(title, timings):
    """A small table: path, batch, wall and CPU ms per face and the speed-ups over the
    original path by each (CPU time moves less with other load on a shared machine), then
    the ratios of onnxruntime_ratios."""
    reference = next(t for t in timings if t.path == ORIGINAL)
    lines = [title, '  %-44s %5s %9s %9s %10s %10s' % (
        'path', 'batch', 'ms/face', 'cpu ms', 'speed-up', 'cpu ratio')]
    for t in timings:
        lines.append('  %-44s %5d %9.1f %9.1f %9.2fx %9.2fx' % (
            (t.path, t.batch, t.wall_ms, t.cpu_ms) + t.speedup_over(reference)))
    return '\n'.join(lines + bf16_ratios(timings) + onnxruntime_ratios(timings)
                     + prior_cost(timings))


def prior_cost(timings):
    """The shape prior's extra time per face (onnxruntime, batch 1, flip test), if timed."""
    by_path = {(t.path, t.batch): t for t in timings}
    with_prior = by_path.get((LIBRARY_ONNX + FLIP + PRIOR, 1))
    without = by_path.get((LIBRARY_ONNX + FLIP, 1))
    if with_prior is None or without is None:
        return []
    return ['  shape prior, onnxruntime at batch 1 with the flip test: %+.2f ms per face '
            '(CPU %+.2f ms)' % (with_prior.wall_ms - without.wall_ms,
                                with_prior.cpu_ms - without.cpu_ms)]


def onnxruntime_ratios(timings):
    """Lines comparing onnxruntime with MXNet at batch 1 with the flip test, and onnxruntime's
    split batches with its one-session baseline."""
    pairs = [('onnxruntime / MXNet, batch 1 with the flip test', LIBRARY_ONNX + FLIP, 1,
              LIBRARY_MXNET + FLIP),
             ('onnxruntime split / one session, batch 1 with the flip test',
              LIBRARY_ONNX + FLIP, 1, LIBRARY_ONNX + ONE_SESSION + FLIP)]
    batches = sorted({t.batch for t in timings if t.path == LIBRARY_ONNX + ONE_SESSION})
    pairs += [('onnxruntime split / one session, batch %d' % batch, LIBRARY_ONNX, batch,
               LIBRARY_ONNX + ONE_SESSION) for batch in batches]
    by_path = {(t.path, t.batch): t for t in timings}
    return ['  %s: %.2fx faster (CPU time %.2fx)'
            % ((label,) + by_path[(path, batch)].speedup_over(by_path[(reference, batch)]))
            for label, path, batch, reference in pairs
            if (path, batch) in by_path and (reference, batch) in by_path]
