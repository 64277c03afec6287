"""The built-in synthetic face data set: determinism, record format, label conventions."""
import multiprocessing
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from data import synthetic
from data.landmarks import FLIP_ORDER
from data.recordio import label_to_points, unpack_record
from data.synthetic.face import make_head, sample_params
from scripts import make_synthetic

SIZE = synthetic.RECORD_SIZE


def read_split(rec_path):
    """[(image, points, raw header label)] of a split, in index order."""
    reader = mx.recordio.MXIndexedRecordIO(rec_path[:-4] + '.idx', rec_path, 'r')
    records = []
    for key in sorted(reader.keys):
        payload = reader.read_idx(key)
        header, _ = mx.recordio.unpack(payload)
        image, points, _ = unpack_record(payload)
        records.append((image, points, np.asarray(header.label)))
    reader.close()
    return records


def find_face(predicate, split='test', limit=400):
    """Index of the first face of seed 0 whose sampled head satisfies predicate."""
    for index in range(limit):
        if predicate(make_head(synthetic.sample_rng(0, split, index)).params):
            return index
    raise AssertionError('no such face in the first %d' % limit)


@pytest.fixture(scope='module')
def small_split(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp('synth') / 'train')
    summary = synthetic.write_split(prefix, 'train', 20, '2d', seed=0, workers=2,
                                    progress=False)
    return summary


def test_same_seed_same_bytes_whatever_the_workers(small_split, tmp_path):
    assert small_split.written == 20 and not small_split.skipped
    serial = synthetic.write_split(str(tmp_path / 'train'), 'train', 20, '2d', seed=0,
                                   workers=1, progress=False)
    for suffix in ('.rec', '.idx'):
        with open(small_split.rec_path[:-4] + suffix, 'rb') as a, \
                open(serial.rec_path[:-4] + suffix, 'rb') as b:
            assert a.read() == b.read()


def test_2d_sets_keep_300w_like_poses_3d_sets_reach_further():
    def yaws(max_yaw):
        return np.array([sample_params(synthetic.sample_rng(0, 'train', i), max_yaw)['yaw']
                         for i in range(300)])
    near, wide = yaws(synthetic.MAX_YAW['2d']), yaws(synthetic.MAX_YAW['3d'])
    assert np.abs(near).max() <= 45 and np.abs(near).max() > 40
    assert np.abs(wide).max() > 60
    # The same draws: only the yaw range differs.
    same = sample_params(synthetic.sample_rng(0, 'train', 7), 45.0)
    other = sample_params(synthetic.sample_rng(0, 'train', 7), 70.0)
    assert same['width'] == other['width'] and same['shape_basis'].tolist() == \
        other['shape_basis'].tolist()


def test_other_seed_or_split_differs():
    image, points = synthetic.make_face(0, 'train', 3)
    other_seed, other_points = synthetic.make_face(1, 'train', 3)
    other_split, _ = synthetic.make_face(0, 'val', 3)
    assert not np.array_equal(image, other_seed)
    assert not np.allclose(points['2d'], other_points['2d'])
    assert not np.array_equal(image, other_split)


def test_record_format(small_split):
    records = read_split(small_split.rec_path)
    assert len(records) == 20
    for index, (image, points, raw) in enumerate(records[:5]):
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert raw.shape == (136,)
        # Stored as (y, x) pairs: label_to_points undoes it.
        np.testing.assert_allclose(raw[0::2], points[:, 1])
        np.testing.assert_allclose(raw[1::2], points[:, 0])
        _, expected = synthetic.make_face(0, 'train', index, synthetic.MAX_YAW['2d'])
        np.testing.assert_allclose(label_to_points(raw), expected['2d'], atol=1e-3)
    every = np.concatenate([points for _, points, _ in records])
    assert np.all(every >= 0) and np.all(every <= SIZE - 1)


def test_face_is_centred_at_record_scale(small_split):
    # The record convention (data.converters) centres the protocol box: the landmark box is
    # centred across (to the protocol's integer centre) and its crop side is base_scale.
    for _, points, _ in read_split(small_split.rec_path):
        low, high = points.min(axis=0), points.max(axis=0)
        assert abs((low[0] + high[0]) / 2 - SIZE / 2) < 2
        assert 200 < 1.2 * (high - low).max() <= 256 + 1e-3
        assert SIZE / 2 < (low[1] + high[1]) / 2 < SIZE / 2 + 40


def test_jaw_conventions_differ_only_at_large_yaw():
    turned = find_face(lambda p: abs(p['yaw']) > 55)
    # Frontal and far from the camera (close up, perspective hides the sides a little).
    frontal = find_face(lambda p: abs(p['yaw']) < 5 and abs(p['pitch']) < 8
                        and p['distance'] > 1500)
    _, turned_points = synthetic.make_face(0, 'test', turned)
    _, frontal_points = synthetic.make_face(0, 'test', frontal)
    for points in (turned_points, frontal_points):
        np.testing.assert_allclose(points['2d'][17:], points['3d'][17:])
    moved = np.linalg.norm(turned_points['2d'][:17] - turned_points['3d'][:17], axis=1)
    assert moved.max() > 10.0
    assert np.linalg.norm(frontal_points['2d'][:17] - frontal_points['3d'][:17],
                          axis=1).max() < 2.0
    # The 3D far-side jaw lies behind the cheek; the 2D one slides out to the silhouette,
    # never inwards. Outward is along the eye line (subject's right -> left) on the left side.
    across = turned_points['3d'][42:48].mean(axis=0) - turned_points['3d'][36:42].mean(axis=0)
    across /= np.linalg.norm(across)
    outward = np.where(np.arange(17)[:, None] < 8, -across, across)
    reach = np.sum((turned_points['2d'][:17] - turned_points['3d'][:17]) * outward, axis=1)
    assert reach.min() > -1.0 and reach.max() > 10.0


def test_mirrored_frontal_face_matches_flip_order():
    index = find_face(lambda p: abs(p['yaw']) < 3 and abs(p['pitch']) < 6
                      and max(p['eye_closure']) < 0.1)
    _, points = synthetic.make_face(0, 'test', index)
    for convention in ('2d', '3d'):
        mirrored = points[convention].copy()
        # Mirrored about the midpoint of the eye centres (the face's own midline).
        axis = (mirrored[36:42, 0].mean() + mirrored[42:48, 0].mean()) / 2
        mirrored[:, 0] = 2 * axis - mirrored[:, 0]
        flipped_error = np.linalg.norm(mirrored[FLIP_ORDER] - points[convention], axis=1)
        unordered_error = np.linalg.norm(mirrored - points[convention], axis=1)
        assert flipped_error.mean() < 4.0
        assert unordered_error.mean() > 20.0


def test_ensure_synthetic_is_idempotent(tmp_path):
    counts = {'train': 4, 'val': 2, 'test': 2}
    paths = synthetic.ensure_synthetic(str(tmp_path), '3d', counts=counts, workers=1,
                                       progress=False)
    assert sorted(paths) == ['test', 'train', 'val']
    stamps = {split: os.stat(path).st_mtime_ns for split, path in paths.items()}
    with open(paths['val'], 'rb') as handle:
        val_bytes = handle.read()
    assert synthetic.ensure_synthetic(str(tmp_path), '3d', counts=counts, workers=1,
                                      progress=False) == paths
    assert {split: os.stat(path).st_mtime_ns for split, path in paths.items()} == stamps
    # A missing half of a split makes just that split again, identical to before.
    os.remove(paths['val'][:-4] + '.idx')
    synthetic.ensure_synthetic(str(tmp_path), '3d', counts=counts, workers=1, progress=False)
    with open(paths['val'], 'rb') as handle:
        assert handle.read() == val_bytes
    assert os.stat(paths['train']).st_mtime_ns == stamps['train']
    assert not [name for name in os.listdir(str(tmp_path)) if name.endswith('.tmp')]
    # Another seed (or landmark type, or generator version) in the same folder remakes all.
    synthetic.ensure_synthetic(str(tmp_path), '3d', seed=1, counts=counts, workers=1,
                               progress=False)
    with open(paths['val'], 'rb') as handle:
        assert handle.read() != val_bytes


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='landmark type'):
        synthetic.ensure_synthetic(str(tmp_path), '4d')
    with pytest.raises(ValueError, match='unknown synthetic split'):
        synthetic.ensure_synthetic(str(tmp_path), counts={'training': 3})
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('x')
    with pytest.raises(ValueError, match='not a folder'):
        synthetic.ensure_synthetic(str(not_a_folder))


def test_cli_writes_splits_and_preview(tmp_path, capsys):
    preview = str(tmp_path / 'preview.png')
    code = make_synthetic.main(['--output', str(tmp_path / 'out'), '--num-train', '3',
                                '--num-val', '1', '--num-test', '0', '--workers', '1',
                                '--preview', preview, '--preview-count', '4'])
    out = capsys.readouterr().out
    assert code == 0 and '4 synthetic faces' in out
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['synthetic.json', 'train.idx',
                                                         'train.rec', 'val.idx', 'val.rec']
    sheet = cv2.imread(preview)
    assert sheet is not None and sheet.shape[0] > 0 and sheet.shape[1] > sheet.shape[0]
    assert make_synthetic.main(['--output', str(tmp_path / 'bad'), '--num-train', '-1']) == 2
    assert capsys.readouterr().err.startswith('error: ')


def _ensure_small(data_dir):
    synthetic.ensure_synthetic(data_dir, counts={'train': 3, 'val': 1, 'test': 1}, workers=1,
                               progress=False)


def test_concurrent_ensure_makes_one_valid_data_set(tmp_path):
    context = multiprocessing.get_context('fork')
    runs = [context.Process(target=_ensure_small, args=(str(tmp_path),)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
        assert run.exitcode == 0
    assert len(read_split(str(tmp_path / 'train.rec'))) == 3
    assert not [name for name in os.listdir(str(tmp_path)) if name.endswith('.tmp')]
