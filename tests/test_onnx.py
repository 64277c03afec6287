"""ONNX export of checkpoints and the onnxruntime backend, on a tiny random-weight network."""
import mxnet as mx
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime
import pytest

from helpers import NME_LINE, face_like_crops, save_tiny_checkpoint, write_synthetic_rec

import essh
import symbols
from data.codec import decode_heatmaps
from inference import FaceAligner
from inference.model import FlipTest, HeatmapModel, load_heatmap_model, resolve_backend
from inference.model_dir import params_digest
from inference.onnx_export import (EXPORT_OPSET, floor_nearest_upsampling,
                                   export_onnx as export_onnx_file)
from inference.onnx_model import OnnxHeatmapModel, available_cpus
from scripts import export_onnx
from symbols.checkpoint import save_checkpoint


class FixedBoxDetector:
    """One face at a fixed box, without five points (the aligner crops the box directly)."""
    name = 'fixed'

    def detect(self, image, threshold=0.4):
        return [essh.Face(np.array([60, 50, 190, 200], np.float32), 0.9, None)]


@pytest.fixture(scope='module')
def tiny_prefix(tmp_path_factory):
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp('onnx') / 'model'), seed=3)


@pytest.fixture(scope='module')
def dynamic_onnx(tiny_prefix, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('export') / 'model.onnx')
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', path]) == 0
    return path


def test_export_writes_a_checked_dynamic_batch_model(dynamic_onnx):
    model = onnx.load(dynamic_onnx)
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [
        EXPORT_OPSET]
    # Weights are initializers only; the one graph input is the image batch.
    assert [i.name for i in model.graph.input] == ['data']
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch_dim.HasField('dim_value')
    # concat_channels' reshape_like (lhs_begin/rhs_begin) became Shape/Slice/Reshape nodes.
    assert {'Shape', 'Slice', 'Reshape', 'Concat'} <= {n.op_type for n in model.graph.node}


def test_onnxruntime_agrees_with_mxnet(tiny_prefix, dynamic_onnx, tmp_path):
    crops = face_like_crops(5, seed=2)
    reference = HeatmapModel(tiny_prefix, 0, batch_size=4).predict(crops)
    dynamic = OnnxHeatmapModel.from_file(dynamic_onnx, batch_size=4)
    assert dynamic.loss == 'l2'     # kept in the metadata: how to read its peak confidence
    heatmaps = dynamic.predict(crops)
    np.testing.assert_allclose(heatmaps, reference, rtol=1e-4, atol=1e-4)
    points = decode_heatmaps(heatmaps, 128, 'subpixel')
    assert np.abs(points - decode_heatmaps(reference, 128, 'subpixel')).max() < 0.1
    # A model exported for a fixed batch pads the short last chunk and drops the padding.
    fixed_path = str(tmp_path / 'fixed.onnx')
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', fixed_path,
                             '--batch-size', '2']) == 0
    fixed = load_heatmap_model(fixed_path, backend='onnxruntime', batch_size=16)
    assert fixed.fixed_batch == 2 and fixed.batch_size == 2 and fixed.workers == 1
    np.testing.assert_allclose(fixed.predict(crops), reference, rtol=1e-4, atol=1e-4)
    assert dynamic.predict(crops[:0]).shape == (0, 68, 64, 64)


def test_nearest_upsampling_is_exported_in_the_form_onnxruntime_keeps_blocked(dynamic_onnx):
    resizes = [node for node in onnx.load(dynamic_onnx).graph.node if node.op_type == 'Resize']
    assert resizes
    for node in resizes:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes['coordinate_transformation_mode'] == b'asymmetric'
        assert attributes['nearest_mode'] == b'floor'


@pytest.mark.parametrize('scale', [2.0, 3.0, 1.5])
def test_floor_upsampling_rewrite_keeps_every_output_pixel(scale):
    """For integer scales, half-pixel nearest (MXNet's UpSampling as exported) and asymmetric
    floor pick the same source pixels; other scales are left as they are."""
    scales = onnx.numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), 'scales')
    roi = onnx.numpy_helper.from_array(np.zeros(0, np.float32), 'roi')
    node = onnx.helper.make_node('Resize', ['x', 'roi', 'scales'], ['y'], mode='nearest',
                                 coordinate_transformation_mode='half_pixel')
    graph = onnx.helper.make_graph(
        [node], 'up', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT,
                                                          [1, 2, 5, 7])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, None)],
        initializer=[scales, roi])
    original = onnx.helper.make_model(graph, opset_imports=[
        onnx.helper.make_opsetid('', EXPORT_OPSET)])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    floor_nearest_upsampling(rewritten)
    modes = [onnx.helper.get_attribute_value(a) for a in rewritten.graph.node[0].attribute
             if a.name == 'coordinate_transformation_mode']
    assert modes == ([b'half_pixel'] if scale == 1.5 else [b'asymmetric'])
    x = np.random.RandomState(0).rand(1, 2, 5, 7).astype(np.float32)
    outputs = [onnxruntime.InferenceSession(model.SerializeToString(),
                                            providers=['CPUExecutionProvider']).run(
        None, {'x': x})[0] for model in (original, rewritten)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    if scale == 2.0:
        np.testing.assert_array_equal(outputs[0], x.repeat(2, axis=2).repeat(2, axis=3))


def test_batches_split_between_single_threaded_sessions_match_one_session(dynamic_onnx):
    crops = face_like_crops(5, seed=6)
    one = OnnxHeatmapModel.from_file(dynamic_onnx, batch_size=4, workers=1)
    split = OnnxHeatmapModel.from_file(dynamic_onnx, batch_size=4, workers=3)
    assert (one.workers, len(one._worker_sessions), len(split._worker_sessions)) == (1, 0, 3)
    reference = one.predict(crops)
    ran, run_in = [], split._run_in
    split._run_in = lambda session, planes: ran.append((session, len(planes))) or run_in(
        session, planes)
    np.testing.assert_allclose(split.predict(crops), reference, rtol=1e-5, atol=1e-5)
    # Chunks of 4 (in three parts: 2 + 1 + 1, one per worker) and 1 (the multi-threaded session).
    assert sorted((split._worker_sessions.index(s), n) for s, n in ran[:3]) == [
        (0, 2), (1, 1), (2, 1)]
    assert ran[3:] == [(split._session, 1)]
    np.testing.assert_allclose(FlipTest(split).predict(crops[:1]),
                               FlipTest(one).predict(crops[:1]), rtol=1e-5, atol=1e-5)
    # By default one worker per CPU, at most the batch size.
    assert OnnxHeatmapModel.from_file(dynamic_onnx).workers == min(available_cpus(), 16)
    assert OnnxHeatmapModel.from_file(dynamic_onnx, batch_size=1).workers == 1
    with pytest.raises(ValueError, match='workers must be at least 1'):
        OnnxHeatmapModel.from_file(dynamic_onnx, workers=0)


def test_aligner_onnxruntime_backend_matches_mxnet(tiny_prefix, dynamic_onnx):
    rng = np.random.RandomState(0)
    image = np.clip(rng.normal(120, 40, (240, 260, 3)), 0, 255).astype(np.uint8)
    by_mxnet = FaceAligner(tiny_prefix, 0, detector=FixedBoxDetector())
    from_checkpoint = FaceAligner(tiny_prefix, 0, detector=FixedBoxDetector(),
                                  backend='onnxruntime')
    from_file = FaceAligner(dynamic_onnx, detector=FixedBoxDetector(), backend='onnxruntime')
    reference = by_mxnet.get_landmarks(image)[0].landmarks
    for aligner in (from_checkpoint, from_file):
        faces = aligner.get_landmarks(image)
        assert len(faces) == 1
        assert np.abs(faces[0].landmarks - reference).max() < 0.1


def test_auto_backend_is_onnxruntime_on_the_cpu_in_float32(tiny_prefix, dynamic_onnx):
    assert resolve_backend('auto', tiny_prefix) == 'onnxruntime'
    assert resolve_backend('auto', tiny_prefix, mx.cpu()) == 'onnxruntime'
    assert resolve_backend('auto', dynamic_onnx, mx.gpu(0)) == 'onnxruntime'
    assert resolve_backend('auto', tiny_prefix, mx.gpu(0)) == 'mxnet'
    assert resolve_backend('auto', tiny_prefix, dtype='bf16') == 'mxnet'
    assert resolve_backend('mxnet', tiny_prefix) == 'mxnet'
    assert isinstance(load_heatmap_model(tiny_prefix), OnnxHeatmapModel)
    assert isinstance(FaceAligner(tiny_prefix, detector=FixedBoxDetector()).model,
                      OnnxHeatmapModel)


def test_bad_models_and_backends_are_clear_errors(tiny_prefix, tmp_path):
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not a protobuf at all')
    with pytest.raises(ValueError, match='broken.onnx'):
        load_heatmap_model(str(broken), backend='onnxruntime')
    for shape in ([1, 10], [1, 3, 224, 224]):
        value = onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, shape)
        graph = onnx.helper.make_graph([onnx.helper.make_node('Relu', ['x'], ['y'])], 'other',
                                       [value], [onnx.helper.make_tensor_value_info(
                                           'y', onnx.TensorProto.FLOAT, shape)])
        with pytest.raises(ValueError, match='other.onnx'):
            onnx.save(onnx.helper.make_model(graph, opset_imports=[
                onnx.helper.make_opsetid('', EXPORT_OPSET)]), str(tmp_path / 'other.onnx'))
            load_heatmap_model(str(tmp_path / 'other.onnx'), backend='onnxruntime')
    with pytest.raises(ValueError, match='no such ONNX model'):
        load_heatmap_model(str(tmp_path / 'missing.onnx'), backend='onnxruntime')
    with pytest.raises(ValueError, match='valid: auto, mxnet, onnxruntime'):
        load_heatmap_model(tiny_prefix, backend='tensorrt')
    assert export_onnx.main(['--prefix', str(tmp_path / 'none'), '--output',
                             str(tmp_path / 'x.onnx')]) == 2
    assert not (tmp_path / 'x.onnx').exists()
    # onnxruntime's metadata asks for a newer numpy than MXNet allows; it runs on this one.
    assert onnxruntime.get_device() == 'CPU'


def test_sat_network_with_deconvolution_exports(tmp_path):
    # SAT up-sampling is a Deconvolution relying on MXNet's implicit no_bias default.
    symbol = symbols.get_symbol('sat2d3-cab', multiplier=0.25, net_n=2)
    arg_params, aux_params = symbols.init_params(symbol, (1, 3, 128, 128))
    prefix = str(tmp_path / 'sat')
    save_checkpoint(prefix, 0, symbol, arg_params, aux_params)
    crops = face_like_crops(2, seed=4)
    reference = HeatmapModel(prefix, 0).predict(crops)
    heatmaps = load_heatmap_model(prefix, backend='onnxruntime').predict(crops)
    # Random weights give large activations: compare relative to the output scale.
    np.testing.assert_allclose(heatmaps, reference, rtol=1e-4,
                               atol=1e-4 * np.abs(reference).max())


def test_untranslatable_operator_is_a_clear_error(tmp_path):
    # ONNX has no deformable convolution; MXNet's exporter has no translation for it.
    symbol = symbols.get_symbol('hg2d3-cab', multiplier=0.25, net_n=2, net_dcn=1)
    arg_params, aux_params = symbols.init_params(symbol, (1, 3, 128, 128))
    prefix = str(tmp_path / 'dcn')
    save_checkpoint(prefix, 0, symbol, arg_params, aux_params)
    with pytest.raises(ValueError, match='dcn-symbol.json: ONNX export failed.*Deformable'):
        export_onnx_file(prefix, 0, str(tmp_path / 'dcn.onnx'))
    assert not (tmp_path / 'dcn.onnx').exists()


def test_int8_export_quantizes_convolutions_and_tracks_float(tiny_prefix, dynamic_onnx,
                                                            tmp_path):
    rec = write_synthetic_rec(str(tmp_path / 'calibration'), count=6)
    int8_path = str(tmp_path / 'int8.onnx')
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', int8_path,
                             '--int8-calibration', rec, '--calibration-faces', '4']) == 0
    model = onnx.load(int8_path)
    ops = [node.op_type for node in model.graph.node]
    convolutions = ops.count('Conv')
    int8_kernels = [w for w in model.graph.initializer
                    if w.data_type == onnx.TensorProto.INT8 and len(w.dims) == 4]
    assert 'QuantizeLinear' in ops and len(int8_kernels) == convolutions > 0
    crops = face_like_crops(4, seed=5)
    reference = OnnxHeatmapModel.from_file(dynamic_onnx).predict(crops)
    heatmaps = OnnxHeatmapModel.from_file(int8_path).predict(crops)
    relative = np.linalg.norm(heatmaps - reference) / np.linalg.norm(reference)
    # The random tiny network's weights follow MXNet's global seed: between 0.03 and 0.18 seen.
    # A quantizer with wrong scales is off by ~1; real-model accuracy: test_shipped_model.py.
    assert relative < 0.3
    # A fixed batch size is calibrated in chunks of that size (4 faces: 3 + 1 padded).
    fixed_path = str(tmp_path / 'int8-fixed.onnx')
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', fixed_path, '--batch-size', '3',
                             '--int8-calibration', rec, '--calibration-faces', '4']) == 0
    fixed = OnnxHeatmapModel.from_file(fixed_path)
    assert fixed.fixed_batch == 3 and fixed.predict(crops).shape == heatmaps.shape


def test_int8_calibration_problems_are_one_line_errors(tiny_prefix, tmp_path, capsys):
    output = tmp_path / 'int8.onnx'
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', str(output),
                             '--int8-calibration', str(tmp_path / 'none.rec')]) == 2
    assert 'none.rec: no such record file' in capsys.readouterr().err
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', str(output),
                             '--int8-calibration', 'x.rec', '--calibration-faces', '0']) == 2
    assert not output.exists()


def test_evaluate_cli_runs_an_onnx_file(tiny_prefix, dynamic_onnx, tmp_path, capsys):
    import evaluate
    rec = write_synthetic_rec(str(tmp_path / 'ibug'), count=4)
    lines = []
    for model in (['--prefix', tiny_prefix], ['--prefix', dynamic_onnx, '--backend',
                                             'onnxruntime']):
        assert evaluate.main(['--dataset', 'ibug', '--rec', rec, '--output',
                              str(tmp_path / 'out'), '--decode', 'subpixel'] + model) == 0
        lines.append(NME_LINE.search(capsys.readouterr().out).group(2))
    assert lines[0] == lines[1]


def test_cross_entropy_models_are_known_to_output_logits(tiny_prefix, dynamic_onnx, tmp_path):
    """The 'dark' decoder and the peak confidence read a ce model's maps as logits: the loss is
    read off the checkpoint's training graph and carried into exported ONNX models."""
    ce_prefix = save_tiny_checkpoint(str(tmp_path / 'ce'), seed=4, net_loss='ce')
    ce_onnx = export_onnx_file(ce_prefix, 0, str(tmp_path / 'ce.onnx'))
    for model, loss in ((HeatmapModel(ce_prefix), 'ce'), (HeatmapModel(tiny_prefix), 'l2'),
                        (OnnxHeatmapModel.from_file(ce_onnx), 'ce'),
                        (OnnxHeatmapModel.from_file(dynamic_onnx), 'l2')):
        assert model.loss == loss and model.codec('dark').loss == loss
    # ... and the export records the weights it came from (a shape prior's check).
    assert {p.key: p.value for p in onnx.load(ce_onnx).metadata_props} == {
        'heatmap_loss': 'ce', 'source_params_sha256': params_digest(ce_prefix, 0)}
