"""Model directories: a checkpoint (`model-symbol.json`, `model-NNNN.params`) with its card
(`README.md`), as `models/` ships them. Every inference entry point accepts such a directory
in place of a checkpoint prefix; the card must be there and must state the input and heatmap
sizes the graph really has, in its `| input / output |` row:

    | input / output | 128 x 128 RGB crop ... / 68 heatmaps of 64 x 64 |
"""
import os
import re

CARD = 'README.md'
PREFIX_NAME = 'model'
_SIZES_ROW = re.compile(r'^\|\s*input / output\s*\|\s*(\d+) x (\d+)\b.*?/\s*(\d+) heatmaps of '
                        r'(\d+) x (\d+)\s*\|', re.MULTILINE)


def is_model_dir(path):
    return os.path.isdir(str(path))


def open_model_dir(path):
    """(checkpoint prefix, the card's card_sizes) of model directory `path`, read before the
    network is loaded; one-line ValueError when the checkpoint or the card is missing."""
    prefix = os.path.join(path, PREFIX_NAME)
    if not os.path.isfile('%s-symbol.json' % prefix):
        raise ValueError('%s: not a model directory (no %s-symbol.json in it); pass a checkpoint '
                         'prefix or a folder holding %s-symbol.json, %s-NNNN.params and %s'
                         % (path, PREFIX_NAME, PREFIX_NAME, PREFIX_NAME, CARD))
    return prefix, card_sizes(path)


def card_sizes(path):
    """(input size, landmarks, heatmap size) stated by the card of model directory `path`."""
    card = os.path.join(path, CARD)
    try:
        with open(card, encoding='utf-8') as handle:
            text = handle.read()
    except OSError:
        raise ValueError('%s: model directory without its card (%s): a shipped model states '
                         'its data, recipe and sizes there' % (path, CARD)) from None
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
