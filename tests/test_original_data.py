"""The original-style data baseline of scripts/bench_data.py on a tiny synthetic .rec (no timing
assertions: only that it runs, counts and builds batches of the right shape and content)."""
import mxnet as mx
import numpy as np
import pytest

from helpers import blocky_image, ring_face_points

from config import generate_config
from data.augment import augment
from data.codec import render_heatmaps
from data.recordio import RecordWriter
from scripts.original_data import (_augment, _read_sample, baseline_samples_per_second,
                                   original_style_batches)

NUM_RECORDS = 5


@pytest.fixture
def rec(tmp_path):
    prefix = str(tmp_path / 'train')
    with RecordWriter(prefix) as writer:
        for i in range(NUM_RECORDS):
            writer.write(blocky_image(i), ring_face_points(i, (60, 70)))
    return prefix + '.rec'


@pytest.fixture
def cfg():
    return generate_config('hourglass', 'i2d')


def test_baseline_rate_is_positive(rec, cfg):
    assert baseline_samples_per_second(rec, cfg, num_samples=6, batch_size=3) > 0


def test_batches_have_the_iterator_shapes(rec, cfg):
    batches = original_style_batches(rec, cfg, batch_size=4)
    try:
        # 3 batches of 4 from 5 records: crosses two epoch boundaries.
        for _ in range(3):
            data, label = next(batches)
            assert data.shape == (4, 3, 128, 128) and data.dtype == np.float32
            assert label.shape == (4, 68, 64, 64) and label.dtype == np.float32
            maps = label.asnumpy()
            # One Gaussian (peak 20) per landmark map.
            assert np.allclose(maps.reshape(4, 68, -1).max(axis=-1), 20.0)
            assert data.asnumpy().max() > 0
    finally:
        batches.close()


def test_samples_equal_the_library_augmentation(rec, cfg):
    """Same draws -> the same crop and targets as data.augment (the original's semantics)."""
    reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + '.idx', rec, 'r')
    try:
        for key in reader.keys:
            image, points = _read_sample(reader, key, cfg)
            ours = _augment(image, points, np.random.RandomState(key), cfg)
            crop = augment(image, np.ascontiguousarray(points, dtype=np.float32),
                           np.random.RandomState(key))[0]
            maps = np.zeros((1, 68, 64, 64), dtype=np.float32)
            render_heatmaps(maps, crop.cells[np.newaxis])
            np.testing.assert_array_equal(ours[0], crop.image)
            np.testing.assert_allclose(ours[1], maps[0], rtol=1e-6)
    finally:
        reader.close()
