"""Inference: heatmap-network checkpoints (MXNet, or onnxruntime when installed), face cropping
and the FaceAligner. Optional backends are imported only when asked for."""
from .aligner import AlignedFace, FaceAligner
from .model import BACKENDS, HeatmapModel, context_for_gpu, load_heatmap_model

__all__ = ['AlignedFace', 'BACKENDS', 'FaceAligner', 'HeatmapModel', 'context_for_gpu',
           'load_heatmap_model']
