"""ONNX export of checkpoints and the onnxruntime backend, on a tiny random-weight network."""
import numpy as np
import onnx
import onnxruntime
import pytest

import essh
import symbols
from data.codec import decode_heatmaps
from inference import FaceAligner
from inference.model import HeatmapModel
from inference.onnx_export import EXPORT_OPSET, export_onnx as export_onnx_file
from inference.onnx_model import OnnxHeatmapModel, load_heatmap_model
from scripts import export_onnx
from training.checkpoint import save_checkpoint
from test_infer_speed_paths import face_like_crops, save_tiny_checkpoint


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
    heatmaps = dynamic.predict(crops)
    np.testing.assert_allclose(heatmaps, reference, rtol=1e-4, atol=1e-4)
    points = decode_heatmaps(heatmaps, 128, 'subpixel')
    assert np.abs(points - decode_heatmaps(reference, 128, 'subpixel')).max() < 0.1
    # A model exported for a fixed batch pads the short last chunk and drops the padding.
    fixed_path = str(tmp_path / 'fixed.onnx')
    assert export_onnx.main(['--prefix', tiny_prefix, '--output', fixed_path,
                             '--batch-size', '2']) == 0
    fixed = load_heatmap_model(fixed_path, backend='onnxruntime', batch_size=16)
    assert fixed.fixed_batch == 2 and fixed.batch_size == 2
    np.testing.assert_allclose(fixed.predict(crops), reference, rtol=1e-4, atol=1e-4)
    assert dynamic.predict(crops[:0]).shape == (0, 68, 64, 64)


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
    with pytest.raises(ValueError, match='valid: mxnet, onnxruntime'):
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
