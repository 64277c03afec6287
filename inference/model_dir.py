"""Model directories: a checkpoint (`model-symbol.json`, `model-NNNN.params`) with its card
(`README.md`), as `models/` ships them. Every inference entry point accepts such a directory
in place of a checkpoint prefix; the card must be there and must state the input and heatmap
sizes the graph really has, in its `| input / output |` row:

    | input / output | 128 x 128 RGB crop ... / 68 heatmaps of 64 x 64 |

It may also state the landmark convention, 2D or 3D, in its `| landmarks |` row; FaceAligner
then follows it (card_landmark_type).

A checkpoint may also have a shape prior beside it (data.shape_prior, `shape-prior.npz`),
fitted to its weights; `shape_prior_for` finds it and checks that it belongs to them. An
exported `NAME.onnx` keeps its prior in `NAME.shape-prior.npz` (scripts/export_onnx.py writes
it) and the SHA-256 of the weights it was exported from in its metadata.
"""
import hashlib
import logging
import os
import re

from data.shape_prior import FILE_NAME as SHAPE_PRIOR_FILE, ShapePrior, load_shape_prior
from symbols.checkpoint import params_path

CARD = 'README.md'
PREFIX_NAME = 'model'
_SIZES_ROW = re.compile(r'^\|\s*input / output\s*\|\s*(\d+) x (\d+)\b.*?/\s*(\d+) heatmaps of '
                        r'(\d+) x (\d+)\s*\|', re.MULTILINE)
# The card's `| landmarks |` row may state the landmark convention as a word "2D" or "3D", as
# the shipped cards do ("iBUG 68-point scheme, 2D (300-W convention ...)", "..., 3D convention
# (AFLW2000-3D ...)"); the "-3D" of a data set name such as AFLW2000-3D does not count.
_LANDMARKS_ROW = re.compile(r'^\|\s*landmarks\s*\|([^|\n]*)\|', re.MULTILINE)
_DIMENSION = re.compile(r'(?<![\w-])([23])D\b')

# ONNX metadata key of the SHA-256 of the weights file an export was made from: it ties a
# shape prior fitted to those weights to the export.
SOURCE_METADATA_KEY = 'source_params_sha256'

logger = logging.getLogger(__name__)


def is_model_dir(path):
    return os.path.isdir(str(path))


def is_onnx_file(prefix):
    """Whether `prefix` names an exported ONNX model rather than a checkpoint."""
    return str(prefix).lower().endswith('.onnx')


def checkpoint_prefix(path):
    """The checkpoint prefix of model directory `path`; any other path as it is."""
    return os.path.join(path, PREFIX_NAME) if is_model_dir(path) else path


def open_model_dir(path):
    """(checkpoint prefix, the card's card_sizes) of model directory `path`, read before the
    network is loaded; one-line ValueError when the checkpoint or the card is missing."""
    return _model_dir_checkpoint(path), card_sizes(path)


def _model_dir_checkpoint(path):
    """The checkpoint prefix of model directory `path`; ValueError when it holds none."""
    prefix = checkpoint_prefix(path)
    if not os.path.isfile('%s-symbol.json' % prefix):
        raise ValueError('%s: not a model directory (no %s-symbol.json in it); pass a checkpoint '
                         'prefix or a folder holding %s-symbol.json, %s-NNNN.params and %s'
                         % (path, PREFIX_NAME, PREFIX_NAME, PREFIX_NAME, CARD))
    return prefix


def _read_card(path):
    """(card path, card text) of model directory `path`; ValueError when there is no card."""
    card = os.path.join(path, CARD)
    try:
        with open(card, encoding='utf-8') as handle:
            return card, handle.read()
    except OSError:
        raise ValueError('%s: model directory without its card (%s): a shipped model states '
                         'its data, recipe and sizes there' % (path, CARD)) from None


def card_landmark_type(path):
    """'2d' or '3d' as the card of model directory `path` states it in its `| landmarks |`
    row, or None when it has no such row or the row names neither; checked as
    open_model_dir checks the directory, so that it can be read before the network is loaded."""
    _model_dir_checkpoint(path)
    card, text = _read_card(path)
    row = _LANDMARKS_ROW.search(text)
    stated = sorted(set(_DIMENSION.findall(row.group(1)))) if row else []
    if len(stated) > 1:
        raise ValueError('%s: its "| landmarks |" row states both 2D and 3D' % card)
    return '%sd' % stated[0] if stated else None


def card_sizes(path):
    """(input size, landmarks, heatmap size) stated by the card of model directory `path`."""
    card, text = _read_card(path)
    match = _SIZES_ROW.search(text)
    if not match:
        raise ValueError('%s: no "| input / output | S x S ... / K heatmaps of H x H |" row'
                         % card)
    input_h, input_w, points, map_h, map_w = (int(value) for value in match.groups())
    if input_h != input_w or map_h != map_w:
        raise ValueError('%s: states a %d x %d input and %d x %d heatmaps; the networks take '
                         'square crops' % (card, input_h, input_w, map_h, map_w))
    return input_h, points, map_h


def check_card_matches(path, stated, input_size, heatmap_shape):
    """One-line ValueError when the loaded network of model directory `path` (its input size,
    its (K, H, H) heatmaps) is not what its card states (`stated`, from open_model_dir)."""
    actual = (input_size, heatmap_shape[0], heatmap_shape[-1])
    if stated != actual:
        raise ValueError('%s: the card states a %d x %d input and %d heatmaps of %d x %d, the '
                         'network has a %d x %d input and %d heatmaps of %d x %d'
                         % (os.path.join(path, CARD), stated[0], stated[0], stated[1],
                            stated[2], stated[2], actual[0], actual[0], actual[1], actual[2],
                            actual[2]))


def params_digest(prefix, epoch):
    """SHA-256 of checkpoint `prefix`-`epoch`'s weights file."""
    with open(params_path(prefix, epoch), 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def shape_prior_path(prefix):
    """Where the shape prior of checkpoint `prefix` (or of a model directory, or of an
    exported `.onnx` file) lives."""
    if is_onnx_file(prefix):
        return '%s.%s' % (prefix[:-len('.onnx')], SHAPE_PRIOR_FILE)
    folder = prefix if is_model_dir(prefix) else os.path.dirname(prefix)
    return os.path.join(folder, SHAPE_PRIOR_FILE)


def _weights_digest(prefix, epoch):
    """(SHA-256 of the weights `prefix` runs, a one-line reason when it cannot be known):
    the checkpoint's weights file, or what an exported .onnx file records of its source."""
    if not is_onnx_file(prefix):
        try:
            return params_digest(prefix, epoch), None
        except OSError as exc:
            return None, 'cannot read %s (%s)' % (params_path(prefix, epoch), exc.strerror)
    import onnx   # only for an exported model, as the onnxruntime backend does
    from google.protobuf.message import DecodeError
    try:
        properties = {p.key: p.value for p in onnx.load(prefix).metadata_props}
    except (OSError, ValueError, DecodeError) as exc:
        return None, 'cannot read %s (%s)' % (prefix, str(exc).strip() or type(exc).__name__)
    if SOURCE_METADATA_KEY not in properties:
        return None, '%s does not record the weights it was exported from (export it again)' % (
            prefix,)
    return properties[SOURCE_METADATA_KEY], None


def shape_prior_for(prefix, epoch, setting='auto'):
    """The ShapePrior to use with checkpoint `prefix`-`epoch` (`prefix` may be a model
    directory). `setting`: 'auto' the one beside the checkpoint when it was fitted to these
    weights, else None (a warning is logged when one is there but belongs to other weights);
    'off', None or False: None; a path: that file, which must have been fitted to these
    weights (one-line ValueError otherwise); a ShapePrior: itself."""
    if isinstance(setting, ShapePrior):
        return setting
    if setting in (None, False, 'off'):
        return None
    checkpoint = checkpoint_prefix(prefix)
    explicit = setting != 'auto'
    path = setting if explicit else shape_prior_path(prefix)
    if not explicit and not os.path.isfile(path):
        return None
    prior = load_shape_prior(path)
    digest, reason = _weights_digest(checkpoint, epoch)
    if digest == prior.params_sha256:
        return prior
    weights = checkpoint if is_onnx_file(checkpoint) else params_path(checkpoint, epoch)
    message = ('%s: cannot check that it was fitted to %s: %s' % (path, weights, reason)
               if reason else '%s was fitted to other weights than %s' % (path, weights))
    if explicit:
        raise ValueError(message + '; fit one with scripts/fit_shape_prior.py')
    logger.warning('%s: not using it', message)
    return None
