"""Validation NME during training: the last stack's heatmaps on the aug_level=0 crops of each
validation set, decoded like the evaluation protocol and scored by evaluation.metrics.nme.

Ground truth is the batch's `points` (FaceSegIter's crop landmarks) snapped to the pixel grid
as the evaluation protocol does (floor for 2D, round for 3D), so on an aug_level=0 iterator this
NME equals evaluation.protocol's on the same records. An iterator without points is scored
against its label heatmaps decoded like the predictions, as the original did.
"""
import numpy as np
import mxnet as mx

from data.codec import HeatmapCodec
from evaluation.metrics import NORMALISER, SNAP as SNAP_GROUND_TRUTH, nme
from symbols import heatmap_output


class Validator:
    """`run(arg, aux)` scores every validation set with the inference graph.

    The graph is bound afresh for every run: MXNet's MKLDNN subgraph executor folds BatchNorm
    into the convolution weights at its first forward and keeps that folded copy, so an
    executor re-used after `set_params` scores stale weights (validation NME drifted to 1.4x
    the true value over a 300-W run)."""

    def __init__(self, symbol, context, iterators, cfg):
        self.iterators = iterators
        self.codec = HeatmapCodec.from_config(cfg, decode='argmax')
        self.mode = NORMALISER[cfg['landmark_type']]
        self.snap = SNAP_GROUND_TRUTH[cfg['landmark_type']]
        self.symbol = heatmap_output(symbol)
        self.context = context

    def _bind(self, arg_params, aux_params):
        shapes = next(iter(self.iterators.values())).provide_data
        module = mx.mod.Module(self.symbol, data_names=['data'], label_names=None,
                               context=self.context)
        module.bind(data_shapes=shapes, for_training=False)
        module.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
        return module

    def run(self, arg_params, aux_params):
        """{target: mean NME (fraction)} over each validation set, in the sets' order."""
        if not self.iterators:
            return {}
        module = self._bind(arg_params, aux_params)
        results = {}
        for target, iterator in self.iterators.items():
            iterator.reset()
            errors = []
            for batch in iterator:
                keep = batch.data[0].shape[0] - (batch.pad or 0)
                module.forward(mx.io.DataBatch(batch.data), is_train=False)
                heatmaps = module.get_outputs()[0].asnumpy()[:keep]
                pred = self.codec.decode(heatmaps)
                points = getattr(batch, 'points', None)
                if points is not None:
                    truth = self.snap(points)
                else:
                    truth = self.codec.decode(batch.label[0].asnumpy())
                truth = truth[:keep]
                errors.append(nme(pred, truth, mode=self.mode))
            if errors:
                results[target] = float(np.mean(np.concatenate(errors)))
        return results
