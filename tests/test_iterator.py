import logging
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import real_face_folders
from helpers import blocky_image, ring_face_points

from config import generate_config
from data.iterator import FaceSegIter
from data.landmarks import FLIP_ORDER
from data.preview import augmentation_sheet, save_png
from data.recordio import RecordWriter, points_to_label
from data.records import MAGIC, RecordFile, read_index, scan_offsets

NUM_RECORDS = 10


def _write(prefix, count=NUM_RECORDS):
    with RecordWriter(prefix) as writer:
        for i in range(count):
            writer.write(blocky_image(i), ring_face_points(i))
    return prefix + '.rec'


def _write_raw(prefix, payloads):
    """Records given as raw payloads (for bad labels)."""
    writer = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    for i, payload in enumerate(payloads):
        writer.write_idx(i, payload)
    writer.close()
    return prefix + '.rec'


def _payload(i, label):
    header = mx.recordio.IRHeader(0, np.asarray(label, np.float32), i, 0)
    return mx.recordio.pack_img(header, blocky_image(i), quality=95, img_fmt='.jpg')


@pytest.fixture
def rec(tmp_path):
    return _write(str(tmp_path / 'train'))


@pytest.fixture
def cfg():
    return generate_config('hourglass', 'i2d')


def _batches(iterator):
    return [batch for batch in iterator]


def _keys(batches):
    return [int(k) for b in batches for k in b.index[:len(b.index) - b.pad]]


def test_shapes_and_padded_last_batch(rec, cfg):
    it = FaceSegIter(rec, 4, cfg, num_workers=0)
    assert it.provide_data[0].shape == (4, 3, 128, 128)
    assert it.provide_label[0].shape == (4, 68, 64, 64)
    batches = _batches(it)
    assert [b.pad for b in batches] == [0, 0, 2]
    assert sorted(_keys(batches)) == list(range(NUM_RECORDS))
    last = batches[-1]
    data, label = last.data[0].asnumpy(), last.label[0].asnumpy()
    assert data.dtype == np.float32 and 0 <= data.min() and data.max() <= 255
    assert np.array_equal(data[2:], data[:2]) and np.array_equal(label[2:], label[:2])
    assert label.max() == 20.0
    with pytest.raises(StopIteration):
        it.next()


def test_deterministic_for_a_seed_whatever_the_worker_count(rec, cfg):
    def run(seed, workers):
        it = FaceSegIter(rec, 4, cfg, seed=seed, num_workers=workers)
        out = [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.index) for b in it]
        it.close()
        return out

    first = run(3, 0)
    for again in (run(3, 0), run(3, 2)):
        for a, b in zip(first, again):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = run(4, 0)
    assert not np.array_equal(first[0][0], other[0][0])


def test_epochs_reshuffle_and_exf_repeats(rec, cfg):
    it = FaceSegIter(rec, 5, cfg, num_workers=0, exf=2)
    first = _keys(_batches(it))
    assert sorted(first) == sorted(list(range(NUM_RECORDS)) * 2)
    it.reset()
    assert _keys(_batches(it)) != first


def test_validation_heatmaps_peak_at_the_landmarks(rec, cfg):
    it = FaceSegIter(rec, 4, cfg, aug_level=0, shuffle=False, num_workers=0)
    batches = _batches(it)
    assert _keys(batches) == list(range(NUM_RECORDS))
    for batch in batches:
        label = batch.label[0].asnumpy()
        rows, cols = np.divmod(label.reshape(label.shape[:2] + (-1,)).argmax(-1), 64)
        cells = np.stack([cols, rows], -1)
        assert np.all(np.abs(cells - batch.points / 2) <= 1)
        assert batch.transforms.shape == (4, 2, 3)


def test_coherent_pairs_are_flipped_copies(rec, cfg):
    cfg = dict(cfg, net_coherent=True, per_batch_size=4)
    it = FaceSegIter(rec, 8, cfg, num_workers=0)
    batch = it.next()
    data, label = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    for group in (0, 4):
        for offset in (0, 1):
            plain, flipped = group + offset, group + 2 + offset
            assert batch.index[plain] == batch.index[flipped]
            assert np.array_equal(data[flipped], data[plain][:, :, ::-1])
            assert np.array_equal(label[flipped], label[plain][:, :, ::-1][FLIP_ORDER])


def test_coordinate_targets(rec, cfg):
    it = FaceSegIter(rec, 4, dict(cfg, losstype='coord'), num_workers=0)
    batch = it.next()
    assert it.provide_label[0].shape == (4, 68, 2)
    label = batch.label[0].asnumpy()
    assert np.allclose(label, batch.points / 128, atol=1e-6)
    assert 0 <= label.min() and label.max() < 1


def test_sharding_splits_the_records(rec, cfg):
    parts = [_keys(_batches(FaceSegIter(rec, 2, cfg, num_workers=0, part_index=p, num_parts=3)))
             for p in range(3)]
    assert sorted(sum(parts, [])) == list(range(NUM_RECORDS))
    assert sorted(parts[1]) == [1, 4, 7]


def test_bad_records_are_skipped_and_reported(tmp_path, cfg, caplog):
    payloads = [_payload(i, points_to_label(ring_face_points(i))) for i in range(8)]
    payloads[2] = _payload(2, np.zeros(10))
    payloads[5] = _payload(5, points_to_label(ring_face_points(5) + 5000))
    nan_points = ring_face_points(7)
    nan_points[30] = np.nan
    payloads[7] = _payload(7, points_to_label(nan_points))
    rec = _write_raw(str(tmp_path / 'bad'), payloads)
    # Record 3: damage its JPEG data in place (the stream starts with the SOI marker).
    keys, offsets = read_index(str(tmp_path / 'bad.idx'))
    with open(rec, 'r+b') as handle:
        handle.seek(offsets[3])
        start = handle.read(len(payloads[3]) + 8).index(b'\xff\xd8\xff')
        handle.seek(offsets[3] + start)
        handle.write(b'\x00' * 64)
    caplog.set_level(logging.WARNING)
    it = FaceSegIter(rec, 2, cfg, aug_level=0, shuffle=False, num_workers=0)
    assert _keys(_batches(it)) == [0, 1, 4, 6]
    reasons = dict(it.skipped)
    assert sorted(reasons) == [2, 3, 5, 7]
    assert 'label has 10 values' in reasons[2] and 'does not decode' in reasons[3]
    assert 'outside' in reasons[5] and 'NaN' in reasons[7]
    assert 'skipped 4 of 8' in caplog.text and 'record 3' in caplog.text


def test_missing_index_is_rebuilt_and_missing_rec_reported(rec, cfg, tmp_path):
    idx = rec[:-4] + '.idx'
    original = read_index(idx)
    os.remove(idx)
    it = FaceSegIter(rec, 4, cfg, num_workers=0)
    assert read_index(idx) == original
    assert sorted(_keys(_batches(it))) == list(range(NUM_RECORDS))
    missing = str(tmp_path / 'nothing.rec')
    with pytest.raises(ValueError, match='nothing.rec: no such record file'):
        FaceSegIter(missing, 4, cfg)


def test_record_reader_joins_records_split_at_the_magic_word(tmp_path):
    magic = MAGIC.to_bytes(4, 'little')
    payloads = [b'abcd' + magic + b'efgh' + magic + b'xyz', b'plain', magic + magic]
    rec = _write_raw(str(tmp_path / 'split'), payloads)
    records = RecordFile(rec)
    assert [records.read(offset) for offset in records.offsets] == payloads
    assert scan_offsets(rec) == records.offsets


@pytest.mark.parametrize('faces', real_face_folders())
def test_real_faces(tmp_path, cfg, faces):
    converters = pytest.importorskip('data.converters')
    summary = converters.pack_pts_folder(faces, str(tmp_path))
    rec = summary.paths['train']
    val = FaceSegIter(rec, 4, cfg, aug_level=0, shuffle=False, num_workers=0)
    train = FaceSegIter(rec, 4, cfg, num_workers=0)
    for it in (val, train):
        batches = _batches(it)
        assert not it.skipped
        assert len(_keys(batches)) == summary.written['train']
        for batch in batches:
            label = batch.label[0].asnumpy()
            rows, cols = np.divmod(label.reshape(label.shape[:2] + (-1,)).argmax(-1), 64)
            # Flipped training samples carry mirrored cells: within one cell either way.
            assert np.all(np.abs(np.stack([cols, rows], -1) - batch.points / 2) <= 1)


def test_preview_sheet_shows_records_above_their_crops(rec, cfg, tmp_path):
    sheet = augmentation_sheet(rec, cfg, count=4, seed=1)
    assert sheet.shape == (2 * 192, 4 * 192, 3) and sheet.dtype == np.uint8
    out = str(tmp_path / 'sheet.png')
    save_png(out, sheet)
    assert os.path.getsize(out) > 0 and not os.path.exists(out + '.tmp')


def test_subpixel_targets_and_extra_augmentation_reach_the_batches(rec, cfg):
    from data.codec import decode_heatmaps
    plain = FaceSegIter(rec, 4, cfg, aug_level=0, shuffle=False, num_workers=0).next()
    subpixel_cfg = dict(cfg, target_encoding='subpixel')
    exact = FaceSegIter(rec, 4, subpixel_cfg, aug_level=0, shuffle=False, num_workers=0).next()
    assert np.array_equal(plain.data[0].asnumpy(), exact.data[0].asnumpy())
    cell_error = np.abs(decode_heatmaps(plain.label[0].asnumpy(), method='dark') - plain.points)
    exact_error = np.abs(decode_heatmaps(exact.label[0].asnumpy(), method='dark') - exact.points)
    # Cell targets lose up to a cell (2 px); sub-pixel targets keep the position.
    assert exact_error.max() < 0.05 < cell_error.max()
    augmented_cfg = dict(cfg, aug_shift=0.05, aug_occlusion=1.0, aug_color=0.2)
    first, second = (FaceSegIter(rec, 4, c, num_workers=0, seed=1).next()
                     for c in (cfg, augmented_cfg))
    assert not np.array_equal(first.data[0].asnumpy(), second.data[0].asnumpy())
    assert not np.array_equal(first.transforms, second.transforms)
    # --aug-rotation 0 --aug-scale 0 reach the crops: every one is the record's protocol
    # square, unrotated, at the input's scale (docs/data-format.md §3), some mirrored.
    upright = FaceSegIter(rec, 4, dict(cfg, aug_rotation=0, aug_scale=0.0), num_workers=0,
                          seed=1).next()
    ratio = cfg['input_img_size'] / cfg['base_scale']
    linear = np.asarray(upright.transforms)[:, :, :2]
    assert np.allclose(np.abs(linear), [[ratio, 0], [0, ratio]])
