"""Samples per second (wall clock) of FaceSegIter beside a baseline that redoes, step by step,
what the original toolkit's training iterator (deepinx/deep-face-alignment, `data.py`
FaceSegIter with aug_level=1, exf=1, no coherent pairs, as its train.py builds it) does for
every sample, on the same records and in the same run.

Steps of the original that the baseline performs in the same way and order:

* epoch order: the record keys copied and shuffled with Python's `random.shuffle` on reset;
* reading: `MXIndexedRecordIO.read_idx`, `recordio.unpack`, then `mx.image.imdecode(...)
  .asnumpy()` (MXNet's decoder, RGB, into an NDArray and back to numpy);
* label: `np.array(header.label)` reshaped to (68, 2) and reversed to x/y as a view;
* crop, up to 3 draws: an integer rotation in [-40, 40) and a clipped normal scale
  (`draw_crop_params`: the same draws and arithmetic), the 2 x 3 crop matrix, `cv2.warpAffine`
  of the whole record image to 128 x 128 - done on every draw, before the landmarks are
  checked, as in the original;
* target: a zeroed (68, 64, 64) float32 array, then one Python iteration per landmark: copy
  the point, warp it as a homogeneous 3-vector with `np.dot`, bounds-check it (a miss abandons
  the draw, maps drawn so far included), scale it to the heatmap grid, truncate to int32 and
  draw it with the original's Gaussian routine, which builds its 7 x 7 window (arange, exp)
  anew for every point;
* flip with p = 0.5: new zeroed arrays filled one image channel and one heatmap at a time with
  `np.fliplr`, then the heatmaps reordered with a Python index list;
* batch: `nd.empty` data and label arrays for each batch, and for each sample `nd.array` of
  the crop, `nd.transpose` to CHW, `nd.array` of the heatmaps and two slice copies
  `batch[i][:] = ...` into the batch. The consumer waits for both arrays of each batch, as
  `iterator_samples_per_second` does for FaceSegIter.

Where it has to differ:

* Python 3: `range` for `xrange`, and the crop centre taken with `//`, which is what the
  original's `/` on integer image sizes gave under Python 2;
* the crop matrix: the original composed four `skimage.transform.SimilarityTransform`s
  (scale, move centre to origin, rotate, move to output centre; `t1 + t2 + t3 + t4`). scikit-
  image is not a dependency here, so `data.geometry.crop_transform` multiplies the same four
  3 x 3 matrices in the same order; the arithmetic is identical, only skimage's object
  construction (a few tens of microseconds per draw) is not paid;
* random draws come from an explicit `np.random.RandomState(seed)` and `random.Random(seed)`
  rather than the global generators (same calls, same cost);
* the original's `vis` debugging branch (scipy.misc.imsave, removed from SciPy) is never
  taken in training and is left out, as are its unused statistics counters.
"""
import random
import time

import cv2
import mxnet as mx
import numpy as np

from data.augment import FLIP_PROBABILITY, MAX_TRIES, draw_crop_params
from data.geometry import crop_transform
from data.iterator import FaceSegIter
from data.landmarks import FLIP_ORDER
from data.recordio import split_paths

_FLIP_LIST = FLIP_ORDER.tolist()   # the original indexed with a plain Python list


def _warp_point(point, transform):
    """One landmark through a 2 x 3 map, as a homogeneous 3-vector (the original's way)."""
    vector = np.array([point[0], point[1], 1.0]).T
    return np.dot(transform, vector)[:2]


def _draw_gaussian(plane, cell, sigma):
    """Write an unnormalised Gaussian (peak 20) at integer cell (x, y) of `plane`, computing
    the window from scratch on every call; False when it lies wholly outside."""
    if sigma == 0:
        plane[cell[1], cell[0]] = 1.0
        return True
    top_left = [int(cell[0] - 3 * sigma), int(cell[1] - 3 * sigma)]
    bottom_right = [int(cell[0] + 3 * sigma + 1), int(cell[1] + 3 * sigma + 1)]
    height, width = plane.shape[0], plane.shape[1]
    if (top_left[0] > width or top_left[1] >= height
            or bottom_right[0] < 0 or bottom_right[1] < 0):
        return False
    side = 6 * sigma + 1
    xs = np.arange(0, side, 1, float)
    ys = xs[:, np.newaxis]
    middle = side // 2
    window = np.exp(-((xs - middle) ** 2 + (ys - middle) ** 2) / (2 * sigma ** 2)) * 20
    win_x = max(0, -top_left[0]), min(bottom_right[0], width) - top_left[0]
    win_y = max(0, -top_left[1]), min(bottom_right[1], height) - top_left[1]
    out_x = max(0, top_left[0]), min(bottom_right[0], width)
    out_y = max(0, top_left[1]), min(bottom_right[1], height)
    plane[out_y[0]:out_y[1], out_x[0]:out_x[1]] = window[win_y[0]:win_y[1], win_x[0]:win_x[1]]
    return True


def _flip(crop, heatmaps):
    """Mirror a crop channel by channel and its heatmaps map by map, then renumber the maps."""
    crop_out = np.zeros_like(crop)
    heatmaps_out = np.zeros_like(heatmaps)
    for channel in range(crop_out.shape[2]):
        crop_out[:, :, channel] = np.fliplr(crop[:, :, channel])
    for k in range(heatmaps_out.shape[0]):
        heatmaps_out[k, :] = np.fliplr(heatmaps[k, :])
    return crop_out, heatmaps_out[_FLIP_LIST, :]


def _read_sample(reader, key, cfg):
    """(RGB uint8 record image, (68, 2) x/y landmarks view) of one record."""
    header, payload = mx.recordio.unpack(reader.read_idx(key))
    image = mx.image.imdecode(payload).asnumpy()
    label = np.array(header.label).reshape((cfg['num_classes'], 2))
    if not cfg['label_xfirst']:
        label = label[:, ::-1]
    return image, label


def _augment(image, label, rng, cfg):
    """(crop, heatmaps) of one record image as the original drew them, or None when every
    draw left a landmark outside the crop."""
    size, label_size = cfg['input_img_size'], cfg['output_label_size']
    centre = np.array((image.shape[1] // 2, image.shape[0] // 2))
    label_shape = (cfg['num_classes'], label_size, label_size)
    for _ in range(MAX_TRIES):
        rotation, scale = draw_crop_params(rng, cfg['base_scale'])
        transform = crop_transform(centre, size, scale, rotation)
        crop = cv2.warpAffine(image, transform, (size, size), borderValue=0.0)
        heatmaps = np.zeros(label_shape, dtype=np.float32)
        inside = True
        for i in range(label.shape[0]):
            point = _warp_point(label[i].copy(), transform)
            if (point[0] >= crop.shape[1] or point[1] >= crop.shape[0]
                    or point[0] < 0 or point[1] < 0):
                inside = False
                break
            point *= float(label_size) / size
            _draw_gaussian(heatmaps[i], point.astype(np.int32), cfg['gaussian'])
        if not inside:
            continue
        if rng.rand() < FLIP_PROBABILITY:
            crop, heatmaps = _flip(crop, heatmaps)
        return crop, heatmaps
    return None


def original_style_batches(rec_path, cfg, batch_size, seed=0):
    """Endless (data, label) NDArray batches, (N, 3, S, S) and (N, 68, L, L), built with the
    original's per-sample steps in this process; a new shuffled epoch follows each pass."""
    idx_path, rec_path = split_paths(rec_path)
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'r')
    rng = np.random.RandomState(seed)
    shuffler = random.Random(seed)
    size, label_size = cfg['input_img_size'], cfg['output_label_size']
    data_shape = (batch_size, 3, size, size)
    label_shape = (batch_size, cfg['num_classes'], label_size, label_size)
    try:
        order, cursor = [], 0
        while True:
            batch_data = mx.nd.empty(data_shape)
            batch_label = mx.nd.empty(label_shape)
            row = 0
            while row < batch_size:
                if cursor >= len(order):
                    order, cursor = list(reader.keys), 0
                    shuffler.shuffle(order)
                image, label = _read_sample(reader, order[cursor], cfg)
                cursor += 1
                sample = _augment(image, label, rng, cfg)
                if sample is None:
                    continue
                data = mx.nd.transpose(mx.nd.array(sample[0]), axes=(2, 0, 1))
                batch_data[row][:] = data
                batch_label[row][:] = mx.nd.array(sample[1])
                row += 1
            yield batch_data, batch_label
    finally:
        reader.close()


def baseline_samples_per_second(rec_path, cfg, num_samples, batch_size, seed=0):
    """Single-process throughput of the original's per-sample pipeline, counted in whole
    batches (at least num_samples samples)."""
    batches = original_style_batches(rec_path, cfg, batch_size, seed)
    done = 0
    started = time.time()
    try:
        while done < num_samples:
            batch_data, batch_label = next(batches)
            batch_data.wait_to_read()
            batch_label.wait_to_read()
            done += batch_size
        return done / (time.time() - started)
    finally:
        batches.close()


def iterator_samples_per_second(rec_path, cfg, num_samples, batch_size, num_workers, seed=0):
    """FaceSegIter throughput (worker start-up excluded), reading epochs as needed; ValueError
    when a whole epoch yields no sample (every record bad), which would otherwise loop."""
    iterator = FaceSegIter(rec_path, batch_size, cfg, num_workers=num_workers, seed=seed)
    done = epoch_start = 0
    started = time.time()
    try:
        while done < num_samples:
            try:
                batch = iterator.next()
            except StopIteration:
                if done == epoch_start:
                    raise ValueError('%s: no record could be read (%d skipped; first: %s)'
                                     % (rec_path, len(iterator.skipped),
                                        iterator.skipped[0][1] if iterator.skipped else '-'))
                epoch_start = done
                iterator.reset()
                continue
            batch.data[0].wait_to_read()
            batch.label[0].wait_to_read()
            done += batch_size - batch.pad
        return done / (time.time() - started)
    finally:
        iterator.close()
