"""The fast inference paths compute what the original per-face path computes: batched
executors, the MKLDNN-fused graphs and the benchmark that compares them."""
import numpy as np
import pytest

from helpers import face_like_crops, save_tiny_checkpoint

from data.codec import decode_heatmaps
from scripts.original_infer import PerFaceBaseline
from scripts.infer_timing import (LIBRARY_MXNET, LIBRARY_MXNET_BF16, ORIGINAL, UNFUSED,
                                  benchmark_checkpoint, format_timings, save_random_checkpoint)
from inference.model import HeatmapModel
from scripts import bench_infer
from symbols.checkpoint import load_params, params_path
from symbols.precision import bf16_unsupported_reason, cpu_flags

NO_BF16 = bf16_unsupported_reason(cpu_flags())


@pytest.fixture(scope='module')
def tiny_prefix(tmp_path_factory):
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp('speed') / 'model'))


def test_batched_library_path_equals_original_per_face_path(tiny_prefix):
    crops = face_like_crops(5)
    baseline = PerFaceBaseline(tiny_prefix, 0)
    model = HeatmapModel(tiny_prefix, 0, batch_size=4)
    batched = model.predict(crops)
    reference = baseline.predict(crops)
    assert batched.shape == reference.shape == (5, 68, 64, 64)
    np.testing.assert_allclose(batched, reference, rtol=1e-4, atol=1e-4)
    # Chunks of 4 and 1: one executor bound per size, no padded forward of the lone face.
    assert sorted(model._executors) == [1, 4]
    # Decoded the original's way, the batched heatmaps give the original's landmarks.
    same = decode_heatmaps(batched, 128, 'argmax') == baseline.landmarks(crops)
    assert same.all(axis=-1).mean() > 0.98
    # Subpixel decoding refines the same peaks: typically within a pixel of the original's.
    subpixel = decode_heatmaps(batched, 128, 'subpixel')
    assert np.median(np.abs(subpixel - baseline.landmarks(crops))) <= 1.5


def test_fused_graph_matches_unfused_graph(tiny_prefix):
    crops = face_like_crops(3, seed=1)
    fused = PerFaceBaseline(tiny_prefix, 0)
    unfused = PerFaceBaseline(tiny_prefix, 0, fused=False)
    # Executors bound after the unfused one are fused again (the setting is restored).
    library = HeatmapModel(tiny_prefix, 0)
    assert '_sg_mkldnn_conv' in library._executor(3).debug_str()
    assert '_sg_mkldnn_conv' in fused._module._exec_group.execs[0].debug_str()
    assert '_sg_mkldnn_conv' not in unfused._module._exec_group.execs[0].debug_str()
    reference = unfused.predict(crops)
    np.testing.assert_allclose(fused.predict(crops), reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(library.predict(crops), reference, rtol=1e-4, atol=1e-4)


def test_benchmark_times_every_path(tiny_prefix, capsys):
    timings = benchmark_checkpoint(tiny_prefix, 0, faces=3, batch_size=2, progress=False)
    assert [(t.path, t.batch) for t in timings] == [
        (ORIGINAL, 1), (UNFUSED, 1), ('library MXNet', 1), ('library MXNet', 2),
        ('library onnxruntime', 1), ('library onnxruntime', 2),
        ('library onnxruntime, one session', 2),
        ('library onnxruntime int8', 1), ('library onnxruntime int8', 2),
        ('library MXNet, flip test', 1), ('library onnxruntime, flip test', 1),
        ('library onnxruntime, one session, flip test', 1)]
    assert all(t.wall_ms > 0 and t.cpu_ms > 0 for t in timings)
    rows = format_timings('tiny', timings).splitlines()[2:]
    assert len(rows) == 15 and rows[0].split()[-2:] == ['1.00x', '1.00x']
    assert all(row.endswith('x') for row in rows[:12])
    ratio = '%.2fx faster (CPU time %.2fx)'
    assert rows[12:] == [
        '  onnxruntime / MXNet, batch 1 with the flip test: '
        + ratio % timings[-2].speedup_over(timings[-3]),
        '  onnxruntime split / one session, batch 1 with the flip test: '
        + ratio % timings[-2].speedup_over(timings[-1]),
        '  onnxruntime split / one session, batch 2: '
        + ratio % timings[5].speedup_over(timings[6])]
    assert bench_infer.main(['--network', '', '--prefix', tiny_prefix, '--faces', '2',
                             '--batch-size', '2']) == 0
    out = capsys.readouterr().out
    assert ORIGINAL in out and 'library onnxruntime int8' in out and 'load average' in out
    assert bench_infer.main(['--faces', '0']) == 2


def test_random_network_takes_width_and_stack_overrides(tmp_path):
    """bench_infer --multiplier/--net-stacks time a zoo graph made wider or shallower: the
    saved graph must be the overridden one, not the zoo default."""
    prefix = save_random_checkpoint(str(tmp_path / 'wide'), 'hg2d4-resnet', net_stacks=1,
                                    multiplier=0.3125)
    arg, _ = load_params(params_path(prefix, 0))
    assert arg['heatmap_weight'].shape == (68, 80, 1, 1)     # int(256 * 0.3125) channels
    assert not any(name.startswith('stack1_') for name in arg)


@pytest.mark.skipif(NO_BF16 is not None, reason=NO_BF16 or 'bf16 CPU')
def test_benchmark_times_bf16_beside_float32(tiny_prefix):
    timings = benchmark_checkpoint(tiny_prefix, 0, faces=2, batch_size=2, progress=False,
                                   bf16=True, rounds=2)
    assert [(t.path, t.batch) for t in timings[2:6]] == [
        (LIBRARY_MXNET, 1), (LIBRARY_MXNET, 2), (LIBRARY_MXNET_BF16, 1), (LIBRARY_MXNET_BF16, 2)]
    ratios = [line for line in format_timings('tiny', timings).splitlines()
              if 'bf16 / float32' in line]
    assert [line.split(',')[1].split(':')[0] for line in ratios] == [' batch 1', ' batch 2']
    assert all('x faster (CPU time' in line for line in ratios)
