"""Optimizers of the original training script, and their scalar state for resuming.

The original's ONadam is Nesterov Adam with gradient clipping at 5 whose gradient line reads
`grad *= rescale_grad + wd * weight` - an operator-precedence slip for "rescale, then add weight
decay". With that fixed it is exactly MXNet's Nadam (same warming momentum schedule, same
bias corrections), so ONadam here is Nadam with the original's clipping default.
"""
# Imported by name: parameter servers unpickle ONadam while `mxnet` is still initialising.
from mxnet.optimizer import SGD, Adam, Nadam, RMSProp

CLIP_GRADIENT = 5.0


class ONadam(Nadam):
    def __init__(self, learning_rate=0.001, clip_gradient=CLIP_GRADIENT, **kwargs):
        super().__init__(learning_rate=learning_rate, clip_gradient=clip_gradient, **kwargs)


OPTIMIZERS = ('onadam', 'nadam', 'adam', 'rmsprop', 'sgd')


def create_optimizer(name, learning_rate, wd, rescale_grad, lr_scheduler=None):
    """The optimizer the original builds for `--optimizer name` (SGD with momentum 0.9)."""
    common = dict(learning_rate=learning_rate, wd=wd, rescale_grad=rescale_grad,
                  lr_scheduler=lr_scheduler)
    if name == 'onadam':
        return ONadam(**common)
    if name == 'nadam':
        return Nadam(**common)
    if name == 'adam':
        return Adam(**common)
    if name == 'rmsprop':
        return RMSProp(**common)
    if name == 'sgd':
        return SGD(momentum=0.9, **common)
    raise ValueError('unknown optimizer %r; valid: %s' % (name, ', '.join(OPTIMIZERS)))


def scalar_state(optimizer, batches):
    """What Module.save_optimizer_states leaves out: the update count (= batches trained, also
    where the optimizer runs on servers) and Nadam's momentum-schedule product (one scalar
    shared by all parameters, as in MXNet and the original)."""
    state = {'num_update': int(batches)}
    if hasattr(optimizer, 'm_schedule'):
        state['m_schedule'] = float(optimizer.m_schedule)
    return state


def restore_scalar_state(optimizer, state):
    """Every parameter is updated once per batch, so each one's count equals the batch count."""
    optimizer.begin_num_update = optimizer.num_update = int(state['num_update'])
    if 'm_schedule' in state and hasattr(optimizer, 'm_schedule'):
        optimizer.m_schedule = float(state['m_schedule'])
