"""Post-training int8 quantization of an exported heatmap network, with onnxruntime's own
static quantizer (onnxruntime.quantization, already a dependency: no new package).

Weights are quantized per output channel to int8 and activations to uint8 with ranges taken
from calibration faces (min/max), written as QuantizeLinear/DequantizeLinear pairs that
onnxruntime fuses into integer convolutions. On this CPU (AVX-512 VNNI) it cuts hg2d3-cab
from about 80 to 47 ms per face at batch 1; the small shipped model gains nothing. The
calibration faces should be real crops of the kind the model will see: the ranges decide how
much accuracy is lost (version 1 of the shipped model on 201 held-out 300-W faces: 5.49% ->
5.64% NME).
"""
import os
import struct
import tempfile

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from data.geometry import protocol_crop
from data.recordio import top_shift_for, unpack_record
from data.records import RecordFile
from fileio import atomic_write

from .model import crops_to_planes

DEFAULT_CALIBRATION_FACES = 64


class _PlaneReader(CalibrationDataReader):
    """Feeds calibration planes to the quantizer `batch` faces at a time (the last chunk
    filled up by repeating faces, for models exported with a fixed batch size)."""

    def __init__(self, input_name, planes, batch=1):
        chunks = []
        for start in range(0, len(planes), batch):
            chunk = planes[start:start + batch]
            chunks.append(np.resize(chunk, (batch,) + chunk.shape[1:]))
        self._batches = iter([{input_name: chunk} for chunk in chunks])

    def get_next(self):
        return next(self._batches, None)


def model_input_size(model):
    """The side S of an exported model's N x 3 x S x S input."""
    return model.graph.input[0].type.tensor_type.shape.dim[2].dim_value


def calibration_crops(rec_path, count=DEFAULT_CALIBRATION_FACES, top_shift=None, input_size=128):
    """(N, S, S, 3) BGR protocol crops (S = input_size) of the first `count` readable records
    of a `.rec` (the box top shift it was packed with, data.recordio.top_shift_for, unless
    `top_shift` is given)."""
    records = RecordFile(rec_path)
    shift = top_shift_for(records.rec_path) if top_shift is None else top_shift
    crops = []
    try:
        for offset in records.offsets:
            if len(crops) == count:
                break
            try:
                image, points, _ = unpack_record(records.read(offset))
            except (ValueError, struct.error, cv2.error):
                continue   # an unreadable record just does not calibrate
            crops.append(protocol_crop(image, points, shift, output_size=input_size)[0])
    finally:
        records.close()
    if not crops:
        raise ValueError('%s: no readable records to calibrate with' % records.rec_path)
    return np.stack(crops)


def quantize_model(model, crops_bgr):
    """An int8 onnx.ModelProto of the float `model` (as onnx_export.onnx_model_of returns),
    with activation ranges calibrated on `crops_bgr` (N, S, S, 3) uint8, S the model's input."""
    input_name = model.graph.input[0].name
    planes = crops_to_planes(crops_bgr, model_input_size(model))
    fixed_batch = model.graph.input[0].type.tensor_type.shape.dim[0].dim_value   # 0 if free
    with tempfile.TemporaryDirectory() as scratch:
        float_path = os.path.join(scratch, 'float.onnx')
        prepared_path = os.path.join(scratch, 'prepared.onnx')
        int8_path = os.path.join(scratch, 'int8.onnx')
        onnx.save(model, float_path)
        # Shape inference and graph clean-up first, as onnxruntime recommends: the quantizer
        # needs every tensor's shape.
        quant_pre_process(float_path, prepared_path)
        # Convolutions only: quantizing the adds, concats and resizes between them as well was
        # no faster here and lost more accuracy (shipped model: 5.70% instead of 5.64% NME).
        calibration = _PlaneReader(input_name, planes, fixed_batch or 1)
        quantize_static(prepared_path, int8_path, calibration,
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=['Conv'])
        return onnx.load(int8_path)


def save_quantized(model, crops_bgr, output_path):
    """quantize_model, written to `output_path` atomically; returns the path."""
    quantized = quantize_model(model, crops_bgr)
    atomic_write(output_path, lambda tmp: onnx.save(quantized, tmp))
    return output_path
