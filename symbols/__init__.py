"""Network builders: stacked Hourglass and SAT heatmap networks with pluggable blocks."""
from .blocks import BLOCKS, get_block
from .gluon import get_gluon_net
from .heatmap_net import build, heatmap_output
from .init import init_params, initializer
from .zoo import MODELS, get_config, get_symbol, list_models, resolve_config

__all__ = ['BLOCKS', 'MODELS', 'build', 'get_block', 'get_config', 'get_gluon_net',
           'get_symbol', 'heatmap_output', 'init_params', 'initializer', 'list_models',
           'resolve_config']
