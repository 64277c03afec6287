"""The model zoo: one registry of the published architectures and `get_symbol`."""
import config

from . import heatmap_net

# name -> (network preset, overrides). `-3d` names are the same graphs trained on 3D labels.
_MODELS_2D = {
    'hg2d4-resnet': ('hourglass', {'net_n': 4, 'net_block': 'resnet'}),
    'hg2d3-hpm': ('hourglass', {'net_n': 3, 'net_block': 'hpm'}),
    'hg2d4-cab': ('hourglass', {'net_n': 4, 'net_block': 'cab'}),
    'sat2d3-cab': ('satnet', {'net_n': 3, 'net_block': 'cab'}),
    'hg2d3-cab': ('hourglass', {'net_n': 3, 'net_block': 'cab'}),
    'hg2d3-inception': ('hourglass', {'net_n': 3, 'net_block': 'inception'}),
    'hg2d4-hpm': ('hourglass', {'net_n': 4, 'net_block': 'hpm'}),
    'sat2d3-hpm': ('satnet', {'net_n': 3, 'net_block': 'hpm'}),
}
_PUBLISHED_3D = ('sat2d3-cab', 'hg2d3-cab')

MODELS = dict(_MODELS_2D)
MODELS.update({name + '-3d': _MODELS_2D[name] for name in _PUBLISHED_3D})


def list_models():
    return sorted(MODELS)


def get_config(name, **overrides):
    """The full config dict of a zoo model, with overrides applied."""
    if name not in MODELS:
        raise ValueError('unknown model %r; valid: %s' % (name, ', '.join(list_models())))
    network, preset = MODELS[name]
    dataset = 'i3d' if name.endswith('-3d') else 'i2d'
    merged = dict(preset)
    merged.update(overrides)
    return config.generate_config(network, dataset, **merged)


def resolve_config(name_or_config, num_classes=None, **overrides):
    """The config dict of a zoo name, or a copy of a config dict, with overrides applied.
    `num_classes` overrides the landmark count only when given: a config keeps its own."""
    if num_classes is not None:
        overrides['num_classes'] = num_classes
    if isinstance(name_or_config, str):
        return get_config(name_or_config, **overrides)
    return config.override(name_or_config, **overrides)


def get_symbol(name_or_config, num_classes=None, **overrides):
    """The training Symbol for a zoo name or a config dict (see config.generate_config)."""
    return heatmap_net.build(resolve_config(name_or_config, num_classes, **overrides))
