"""Inference: heatmap-network checkpoints (MXNet or onnxruntime), face cropping and the
FaceAligner."""
from .aligner import AlignedFace, FaceAligner
from .model import HeatmapModel, context_for_gpu, load_inference_checkpoint
from .onnx_model import OnnxHeatmapModel, load_heatmap_model

__all__ = ['AlignedFace', 'FaceAligner', 'HeatmapModel', 'OnnxHeatmapModel', 'context_for_gpu',
           'load_heatmap_model', 'load_inference_checkpoint']
