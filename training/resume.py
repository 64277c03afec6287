"""The resume state of an interrupted run, written atomically (checkpoints themselves are
symbols.checkpoint's).

Resume state: `PREFIX-state.json` names a weights file and an optimizer-states file stamped with
the batch count (`PREFIX-resume-%08d.params/.states`). The JSON is replaced last, so a crash at
any moment leaves either the old or the new state complete; the superseded pair is removed after.
"""
import json
import os
import pickle

from console import error_line
from fileio import atomic_write
from symbols.checkpoint import load_params, save_params


def state_path(prefix):
    return '%s-state.json' % prefix


def _beside(prefix, name):
    """A file the state names (by base name), in the prefix's folder."""
    return os.path.join(os.path.dirname(os.path.abspath(prefix)), name)


def save_resume_state(prefix, module, state, with_optimizer):
    """Weights, optimizer states (when this process holds them) and `state` (a JSON dict with
    at least 'batch'), committed together by the final replace of the JSON file."""
    stem = '%s-resume-%08d' % (prefix, state['batch'])
    arg, aux = module.get_params()
    save_params(stem + '.params', arg, aux)
    state = dict(state, params=os.path.basename(stem + '.params'), states=None)
    if with_optimizer:
        atomic_write(stem + '.states', module.save_optimizer_states)
        state['states'] = os.path.basename(stem + '.states')
    previous = _read_state(state_path(prefix)) if os.path.exists(state_path(prefix)) else None
    atomic_write(state_path(prefix), lambda tmp: _write_json(tmp, state))
    if previous:
        for key in ('params', 'states'):
            name = previous.get(key)
            if name and name != state[key] and os.path.exists(_beside(prefix, name)):
                os.remove(_beside(prefix, name))


def resume_files(prefix):
    """The resume state's files that exist: the JSON and the weights/states it names."""
    path = state_path(prefix)
    if not os.path.exists(path):
        return []
    try:
        state = _read_state(path)
    except ValueError:
        return [path]
    named = [_beside(prefix, state[key]) for key in ('params', 'states') if state.get(key)]
    return [path] + [name for name in named if os.path.exists(name)]


def load_resume_state(prefix):
    """(state dict, arg_params, aux_params, optimizer-states path or None) of a run to resume."""
    path = state_path(prefix)
    if not os.path.exists(path):
        raise ValueError('%s: no resume state; was this run started with --prefix %s?'
                         % (path, prefix))
    state = _read_state(path)
    arg, aux = load_params(_beside(prefix, state['params']))
    states = _beside(prefix, state['states']) if state.get('states') else None
    return state, arg, aux, states


def load_optimizer_states(module, path):
    """Restore `module`'s optimizer states from `path` (a pickle that
    Module.save_optimizer_states wrote); a truncated or corrupt file is a ValueError of one
    line naming it instead of pickle's error from inside MXNet."""
    try:
        module.load_optimizer_states(path)
    # What unpickling damaged bytes raises (pickle's documentation), and the AttributeError or
    # TypeError of MXNet using an unpickled object of another kind as its states.
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            KeyError, TypeError, ValueError) as err:
        raise ValueError('%s: unreadable optimizer states (%s: %s); the run cannot be resumed '
                         'from it: start over with --force, or fine-tune from its last '
                         'checkpoint with --pretrained' % (path, type(err).__name__,
                                                          error_line(err))) from None


def _write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def _read_state(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('%s: unreadable resume state (%s)' % (path, err))
    if not isinstance(state, dict) or 'batch' not in state or 'params' not in state:
        raise ValueError('%s: resume state lacks batch/params entries' % path)
    return state
