"""Exporting a checkpoint's heatmap network to ONNX with MXNet's own exporter.

Two fixes make MXNet 1.9.1's output load well in onnxruntime: the exporter stamps the model
with the installed onnx package's newest opset (20 for onnx 1.15) although its translation
tables stop at opset 13, and onnxruntime refuses that "in development" opset, so the model is
stamped with the opset its nodes were written for; and it lists every weight as a graph input
as well as an initializer, which keeps onnxruntime from folding them (no conv + BN fusion).

One MXNet default needs spelling out for the exporter: Deconvolution has no bias unless told
otherwise, but the exporter assumes a bias when the attribute is absent (SAT up-sampling).

And one rewrite is for speed: the hourglass's nearest-neighbour UpSampling comes out as a Resize
with half-pixel coordinates, which onnxruntime's blocked-layout (NCHWc) pass does not take, so
the tensors were reordered out of that layout and back around each of them, and the
BatchNorm/ReLU/Add next to them stayed unfused. For an integer scale, half-pixel coordinates
rounded to the nearest pixel pick the same source pixel as asymmetric coordinates rounded down
(output x reads input floor(x / scale)), and onnxruntime takes that form: the shipped model
got about 20% faster per face (docs/benchmarks.md).
"""
import json
import logging
import os
import tempfile

import mxnet as mx
import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper

from console import error_line
from fileio import atomic_write
from symbols.checkpoint import (checked_params, checkpoint_loss, load_inference_checkpoint,
                                network_sizes, params_path, symbol_path)

from .model import LOSS_METADATA_KEY
from .model_dir import SOURCE_METADATA_KEY, params_digest

# Newest opset of MXNet 1.9.1's ONNX translation tables (mx2onnx/_op_translations_opset13).
EXPORT_OPSET = 13


def _explicit_deconvolution_bias(symbol):
    """`symbol` with MXNet's default `no_bias=True` written on Deconvolution nodes lacking it."""
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        if node['op'] == 'Deconvolution':
            node.setdefault('attrs', {}).setdefault('no_bias', 'True')
    return mx.sym.load_json(json.dumps(graph))


def _exporter_graph(symbol, params, input_size, batch_size, path):
    """Run mx.onnx.export_model into `path`, keeping its per-node logging quiet."""
    shape = (batch_size or 1, 3, input_size, input_size)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    dynamic = {} if batch_size else {'dynamic': True,
                                     'dynamic_input_shapes': [(None,) + shape[1:]]}
    try:
        mx.onnx.export_model(symbol, params, in_shapes=[shape], in_types=[np.float32],
                             onnx_file_path=path, **dynamic)
    finally:
        root.setLevel(level)
    return onnx.load(path)


def floor_nearest_upsampling(model):
    """Rewrite, in place, each nearest-neighbour Resize of `model` whose scales are constant
    integers to asymmetric coordinates rounded down: the same output (see the module
    docstring) in the form onnxruntime keeps in its blocked layout."""
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != 'Resize' or attributes.get('mode') != b'nearest'
                or len(node.input) < 3 or node.input[2] not in constants):
            continue
        scales = onnx.numpy_helper.to_array(constants[node.input[2]])
        if scales.size == 0 or np.any(scales < 1) or np.any(scales != np.round(scales)):
            continue
        kept = [a for a in node.attribute
                if a.name not in ('coordinate_transformation_mode', 'nearest_mode')]
        del node.attribute[:]
        node.attribute.extend(kept + [
            onnx.helper.make_attribute('coordinate_transformation_mode', 'asymmetric'),
            onnx.helper.make_attribute('nearest_mode', 'floor')])


def onnx_model_of(prefix, epoch, batch_size=None):
    """The checkpoint's `heatmap_output` as a checked onnx.ModelProto with input `data`
    (N x 3 x S x S RGB 0..255, S the input size read off the graph) and one N x 68 x 64 x 64
    output; N is `batch_size`, or free when None. The checkpoint's heatmap loss, when its
    graph names one, is kept in the metadata under LOSS_METADATA_KEY, and the SHA-256 of its
    weights file under SOURCE_METADATA_KEY."""
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError('batch size must be at least 1, got %r' % (batch_size,))
    symbol, arg_params, aux_params = load_inference_checkpoint(prefix, epoch)
    source = symbol_path(prefix)
    input_size, _ = network_sizes(symbol, source)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            arg_params, aux_params = checked_params(symbol, arg_params, aux_params,
                                                    params_path(prefix, epoch), input_size)
            model = _exporter_graph(_explicit_deconvolution_bias(symbol),
                                    dict(arg_params, **aux_params), input_size, batch_size,
                                    os.path.join(scratch, 'model.onnx'))
        except (mx.base.MXNetError, AssertionError, AttributeError, KeyError, TypeError) as exc:
            # The exporter fails with plain Python errors on operators it cannot translate.
            raise ValueError('%s: ONNX export failed (%s)'
                             % (source, error_line(exc))) from None
    for opset in model.opset_import:
        if opset.domain in ('', 'ai.onnx'):
            opset.version = EXPORT_OPSET
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    floor_nearest_upsampling(model)
    properties = {SOURCE_METADATA_KEY: params_digest(prefix, epoch)}
    loss = checkpoint_loss(prefix)
    if loss is not None:
        properties[LOSS_METADATA_KEY] = loss
    onnx.helper.set_model_props(model, properties)
    onnx.checker.check_model(model)
    return model


def export_onnx(prefix, epoch, output_path, batch_size=None):
    """Write the checkpoint's heatmap network to `output_path` (atomically); return the path."""
    model = onnx_model_of(prefix, epoch, batch_size)
    atomic_write(output_path, lambda tmp: onnx.save(model, tmp))
    return output_path
