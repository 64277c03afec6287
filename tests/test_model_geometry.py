"""The network geometry travels with the model: the input and heatmap sizes are read off the
graph, the codec refuses maps of another size, and a 256/64 model runs end to end."""
import mxnet as mx
import numpy as np
import pytest

import config
import essh
import symbols
from data.codec import HeatmapCodec, encode_heatmaps
from inference import FaceAligner, HeatmapModel
from symbols import checkpoint


def save_bright_spot_model(prefix):
    """A parameter-free 256/64 "network": every one of its 68 maps is the input's brightness
    max-pooled by 4, so each map peaks where the image's brightest spot is."""
    data = mx.sym.Variable('data')
    brightness = mx.sym.sum(data, axis=1, keepdims=True)
    pooled = mx.sym.Pooling(brightness, kernel=(4, 4), stride=(4, 4), pool_type='max')
    maps = mx.sym.tile(pooled, reps=(1, 68, 1, 1), name='heatmap_output')
    checkpoint.save_checkpoint(prefix, 0, maps, {}, {})
    return prefix


class BoxDetector:
    """One box-only face (no five points), as the Haar fallback reports it."""
    name = 'box'

    def __init__(self, box):
        self.box = np.asarray(box, dtype=np.float32)

    def detect(self, image, threshold=0.4):
        return [essh.Face(self.box, 0.9, None)]


def test_network_sizes_of_zoo_graphs_at_both_sizes():
    for size in ((128, 64), (256, 64)):
        cfg = symbols.get_config('hg2d3-cab', multiplier=0.125, net_n=2,
                                 input_img_size=size[0], output_label_size=size[1])
        assert checkpoint.network_sizes(symbols.heatmap_output(symbols.get_symbol(cfg))) == size


def test_256_model_gets_256_crops_and_its_landmarks_land_on_the_spot(tmp_path):
    prefix = save_bright_spot_model(str(tmp_path / 'spot'))
    model = HeatmapModel(prefix, 0)
    assert (model.input_size, model.heatmap_size) == (256, 64)
    image = np.zeros((480, 640, 3), np.uint8)
    spot = np.array([402.0, 215.0])
    image[213:218, 400:405] = 255     # a 5 x 5 spot centred on (402, 215)
    aligner = FaceAligner(prefix, 0, detector=BoxDetector([300, 120, 500, 330]))
    faces = aligner.get_landmarks(image)
    assert len(faces) == 1 and faces[0].crop.shape == (256, 256, 3)
    # The crop scale is 256 / (1.2 * 210) ~ 1: a heatmap cell is ~4 image pixels.
    errors = np.linalg.norm(faces[0].landmarks - spot, axis=1)
    assert errors.max() < 3.0, errors.max()


def test_codec_refuses_maps_of_another_size():
    codec = HeatmapCodec.from_config(config.generate_config('hourglass', 'i2d'))
    assert (codec.input_size, codec.heatmap_size, codec.sigma) == (128, 64, 1)
    maps = encode_heatmaps(np.array([[40.0, 70.0]]))[None]
    np.testing.assert_allclose(codec.decode(maps)[0, 0], [40.0, 70.0], atol=2.0)
    with pytest.raises(ValueError, match='heatmaps are 32 x 32 but this codec decodes 64 x 64'):
        codec.decode(np.zeros((1, 68, 32, 32), np.float32))
    with pytest.raises(ValueError, match='unknown decode method'):
        HeatmapCodec(decode_method='mean')
    with pytest.raises(ValueError, match='multiple of the heatmap size'):
        HeatmapCodec(100, 64)


def test_a_config_keeps_its_own_landmark_count():
    cfg = config.generate_config('hourglass', 'i2d', num_classes=98, multiplier=0.125, net_n=2)
    assert symbols.resolve_config(cfg)['num_classes'] == 98
    out = symbols.heatmap_output(symbols.get_symbol(cfg))
    assert out.infer_shape(data=(1, 3, 128, 128))[1] == [(1, 98, 64, 64)]
    assert symbols.resolve_config(cfg, num_classes=68)['num_classes'] == 68
    assert symbols.get_config('hg2d3-cab')['num_classes'] == 68


def test_checkpoint_epochs_are_listed(tmp_path):
    prefix = str(tmp_path / 'run' / 'model')
    tmp_path.joinpath('run').mkdir()
    for epoch in (3, 0, 12):
        checkpoint.save_params(checkpoint.params_path(prefix, epoch), {}, {})
    (tmp_path / 'run' / 'model-resume-00000042.params').write_bytes(b'')
    (tmp_path / 'run' / 'other-0001.params').write_bytes(b'')
    assert checkpoint.list_epochs(prefix) == [0, 3, 12]
    assert checkpoint.list_epochs(str(tmp_path / 'run' / 'absent')) == []
