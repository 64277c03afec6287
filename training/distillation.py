"""Knowledge distillation: training targets mixed with a teacher network's heatmaps.

The teacher (any checkpoint or model folder with the student's input size, heatmap size and
heatmap loss; optionally with the flip test, so that a model can learn from its own
mirror-averaged maps) predicts every training batch as the student sees it, after
augmentation. The student's target for each map becomes

    (1 - weight) * ground-truth map + weight * the teacher's map in the same units:

- `ce` (cross-entropy of each map's spatial softmax): the teacher's softmax, scaled to the
  ground-truth map's sum, so the loss keeps its size and the target stays a distribution;
- `l2`: the teacher's heatmap as it is.
"""
import logging

import mxnet as mx
import numpy as np

from inference.model import load_heatmap_model

logger = logging.getLogger(__name__)


def spatial_softmax(maps, dtype=np.float32):
    """Each (h, w) map of (N, C, h, w) logits as a distribution over its pixels, in `dtype`.

    Worked in place on one copy: this runs on every training batch of a distilled run, and
    with float64 temporaries the targets of a batch of 16 took 2.5-4x as long (about 0.2 s
    more on the 2-core CPU). float32 loses nothing a target needs; a caller taking logarithms
    of very small probabilities can ask for float64."""
    flat = maps.reshape(maps.shape[:2] + (-1,)).astype(dtype)
    flat -= flat.max(axis=-1, keepdims=True)
    np.exp(flat, out=flat)
    flat /= flat.sum(axis=-1, keepdims=True)
    return flat.reshape(maps.shape)


def mixed_targets(labels, teacher_maps, loss, weight):
    """(N, C, h, w) float32 targets: `labels` (ground-truth maps) mixed with `teacher_maps`
    (the teacher's output for the same crops) by `weight`, in the units of `loss`."""
    if loss == 'ce':
        targets = spatial_softmax(teacher_maps)
        targets *= weight * labels.sum(axis=(2, 3), keepdims=True, dtype=np.float32)
    else:
        targets = teacher_maps.astype(np.float32)
        targets *= weight
    targets += (1.0 - weight) * labels
    return targets


class Teacher:
    """Relabels training batches with a teacher's heatmaps (module docstring)."""

    def __init__(self, prefix, epoch, weight, flip_test, loss, input_size, label_shape,
                 ctx=None, batch_size=16):
        if not 0.0 < weight <= 1.0:
            raise ValueError('--teacher-weight must be in (0, 1], got %r' % (weight,))
        self.model = load_heatmap_model(prefix, epoch, ctx=ctx, batch_size=batch_size,
                                        flip_test=flip_test)
        found = (self.model.input_size, tuple(self.model.heatmap_shape))
        if found != (input_size, tuple(label_shape)):
            raise ValueError('teacher %s maps %d x %d crops to %s, the student %d x %d crops to '
                             '%s' % (prefix, found[0], found[0], 'x'.join(map(str, found[1])),
                                     input_size, input_size, 'x'.join(map(str, label_shape))))
        if self.model.loss not in (None, loss):
            raise ValueError('teacher %s was trained with the %s loss, the student uses %s: '
                             'their maps are in other units' % (prefix, self.model.loss, loss))
        self.loss, self.weight = loss, float(weight)
        logger.info('distilling from %s%s, weight %.2f', prefix,
                    ' with the flip test' if flip_test else '', self.weight)

    def relabel(self, batch):
        """`batch` (an mx.io.DataBatch of one data and one label array) with mixed targets."""
        labels = batch.label[0].asnumpy()
        maps = self.model.predict_planes(batch.data[0].asnumpy())
        targets = mixed_targets(labels, maps, self.loss, self.weight)
        return mx.io.DataBatch(data=batch.data, label=[mx.nd.array(targets)], pad=batch.pad,
                               index=batch.index, provide_data=batch.provide_data,
                               provide_label=batch.provide_label)
