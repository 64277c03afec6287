"""Samples per second (wall clock) of FaceSegIter beside a baseline that follows the original
toolkit's per-sample steps (MXNet JPEG decode, per-point transform and Gaussian drawing,
per-sample NDArray copies into the batch), on the same records and in the same run."""
import itertools
import time

import cv2
import mxnet as mx
import numpy as np

from data.augment import FLIP_PROBABILITY, MAX_TRIES, draw_crop_params
from data.codec import gaussian_kernel, render_heatmaps_numpy
from data.geometry import crop_transform, warp_points
from data.iterator import FaceSegIter
from data.landmarks import FLIP_ORDER
from data.recordio import label_to_points, split_paths


def _original_style_sample(image, points, rng, cfg):
    """One training sample the way the original built it, or None when no crop fits."""
    size, label_size = cfg['input_img_size'], cfg['output_label_size']
    centre = (image.shape[1] // 2, image.shape[0] // 2)
    for _ in range(MAX_TRIES):
        rotation, scale = draw_crop_params(rng, cfg['base_scale'])
        transform = crop_transform(centre, size, scale, rotation)
        crop = cv2.warpAffine(image, transform, (size, size), borderValue=0.0)
        label = np.zeros((len(points), label_size, label_size), dtype=np.float32)
        for i, point in enumerate(points):
            moved = warp_points(point, transform)
            if moved[0] >= size or moved[1] >= size or moved[0] < 0 or moved[1] < 0:
                break
            cell = (moved * label_size / size).astype(np.int32)
            render_heatmaps_numpy(label[np.newaxis, i:i + 1], cell[np.newaxis, np.newaxis],
                                  gaussian_kernel(cfg['gaussian']))
        else:
            if rng.rand() < FLIP_PROBABILITY:
                crop = np.stack([np.fliplr(crop[:, :, c]) for c in range(3)], axis=2)
                label = np.stack([np.fliplr(plane) for plane in label])[FLIP_ORDER]
            return crop, label
    return None


def baseline_samples_per_second(rec_path, cfg, num_samples, batch_size, seed=0):
    """Single-process throughput of the original's per-sample pipeline."""
    idx_path, rec_path = split_paths(rec_path)
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'r')
    rng = np.random.RandomState(seed)
    size, label_size = cfg['input_img_size'], cfg['output_label_size']
    batch_data = mx.nd.empty((batch_size, 3, size, size))
    batch_label = mx.nd.empty((batch_size, cfg['num_classes'], label_size, label_size))
    done = 0
    started = time.time()
    for key in itertools.cycle(reader.keys):
        if done == num_samples:
            break
        header, payload = mx.recordio.unpack(reader.read_idx(key))
        image = mx.image.imdecode(payload).asnumpy()
        sample = _original_style_sample(image, label_to_points(header.label), rng, cfg)
        if sample is None:
            continue
        row = done % batch_size
        batch_data[row][:] = mx.nd.transpose(mx.nd.array(sample[0]), axes=(2, 0, 1))
        batch_label[row][:] = mx.nd.array(sample[1])
        done += 1
        if row == batch_size - 1:
            mx.nd.waitall()
    mx.nd.waitall()
    reader.close()
    return num_samples / (time.time() - started)


def iterator_samples_per_second(rec_path, cfg, num_samples, batch_size, num_workers, seed=0):
    """FaceSegIter throughput (worker start-up excluded), reading epochs as needed."""
    iterator = FaceSegIter(rec_path, batch_size, cfg, num_workers=num_workers, seed=seed)
    done = 0
    started = time.time()
    try:
        while done < num_samples:
            try:
                batch = iterator.next()
            except StopIteration:
                iterator.reset()
                continue
            batch.data[0].wait_to_read()
            batch.label[0].wait_to_read()
            done += batch_size - batch.pad
        return done / (time.time() - started)
    finally:
        iterator.close()
