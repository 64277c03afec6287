import math

import mxnet as mx
import numpy as np
import pytest

from training.optimizer import ONadam, create_optimizer, restore_scalar_state, scalar_state
from training.schedule import ScheduleLR, StepSchedule, parse_epoch_steps


def onadam_reference(weight, grads, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, eps=1e-8,
                     decay=0.004, original_precedence=False):
    """Nesterov Adam by hand: rescale, then add weight decay, then clip (the fixed order), or
    the original's `grad *= rescale + wd * weight`."""
    w = weight.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    m_schedule = 1.0
    for t, g in enumerate(grads, start=1):
        g = g * (rescale + wd * w) if original_precedence else g * rescale + wd * w
        g = np.clip(g, -clip, clip)
        mom_t = beta1 * (1 - 0.5 * 0.96 ** (t * decay))
        mom_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * decay))
        m_schedule *= mom_t
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_bar = (1 - mom_t) * g / (1 - m_schedule) + mom_next * m / (1 - m_schedule * mom_next)
        w -= lr * m_bar / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return w


def run_mx(opt, weight, grads):
    w = mx.nd.array(weight)
    state = opt.create_state(0, w)
    for g in grads:
        opt.update(0, w, mx.nd.array(g), state)
    return w.asnumpy(), state


def test_onadam_matches_hand_computed_step_with_fixed_precedence():
    rng = np.random.RandomState(0)
    weight = rng.randn(5, 4).astype(np.float32)
    grads = [rng.randn(5, 4).astype(np.float32) * 4 for _ in range(3)]
    grads[1][0, 0] = 50.0   # clipped at 5 after rescaling
    lr, wd, rescale = 0.01, 0.1, 0.5
    got, _ = run_mx(ONadam(learning_rate=lr, wd=wd, rescale_grad=rescale), weight, grads)
    want = onadam_reference(weight, grads, lr, wd, rescale, clip=5.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The original's `grad *= rescale + wd * weight` gives a visibly different step.
    buggy = onadam_reference(weight, grads, lr, wd, rescale, 5.0, original_precedence=True)
    assert np.abs(got - buggy).max() > 1e-3


def test_original_optimizer_choices():
    assert create_optimizer('onadam', 1e-3, 0, 1.0).clip_gradient == 5.0
    assert create_optimizer('nadam', 1e-3, 0, 1.0).clip_gradient is None
    assert create_optimizer('sgd', 1e-3, 1e-4, 0.5).momentum == 0.9
    with pytest.raises(ValueError, match='unknown optimizer'):
        create_optimizer('lamb', 1e-3, 0, 1.0)


def test_scalar_state_resumes_the_same_trajectory():
    rng = np.random.RandomState(1)
    weight = rng.randn(6).astype(np.float32)
    grads = [rng.randn(6).astype(np.float32) for _ in range(4)]
    schedule = StepSchedule(0.01, [1, 2], batch_size=2, epoch_size=5)   # lr drops after batch 3
    make = lambda: ONadam(learning_rate=0.01, lr_scheduler=ScheduleLR(schedule))
    straight, _ = run_mx(make(), weight, grads)

    first = make()
    w, state = run_mx(first, weight, grads[:3])
    saved = scalar_state(first, 3)
    second = make()
    restore_scalar_state(second, saved)
    w = mx.nd.array(w)
    second.update(0, w, mx.nd.array(grads[3]), state)
    np.testing.assert_allclose(w.asnumpy(), straight, rtol=1e-6)
    assert second.num_update == 4 and second._get_lr(0) == pytest.approx(0.002)


def original_lr_trace(base_lr, steps, batch_size, data_size):
    """The original train.py's batch callback, replayed: (lr of each batch, batches trained)."""
    lr, trace, mbatch = base_lr, [], 0
    while True:
        trace.append(lr)
        mbatch += 1
        mepoch = mbatch * batch_size // data_size
        pre = mbatch * batch_size % data_size
        for s in steps[:-1]:
            if mepoch == s and pre < batch_size:
                lr *= 0.2
                break
        if mepoch == steps[-1]:
            return trace, mbatch


@pytest.mark.parametrize('steps,batch,size', [([20, 35, 45], 16, 1000), ([2, 3], 7, 50),
                                              ([1, 4, 5], 32, 64)])
def test_schedule_replays_the_original_callback(steps, batch, size):
    trace, total = original_lr_trace(1.0, steps, batch, size)
    schedule = StepSchedule(1.0, steps, batch, size)
    assert schedule.total_batches == total
    assert [schedule.lr_at(k) for k in range(1, total + 1)] == pytest.approx(trace)
    assert schedule.epoch_of(total) == steps[-1] - 1
    first, last = schedule.epoch_batches(1)
    assert schedule.epoch_of(first) == 1 and schedule.epoch_of(last) == 1
    assert schedule.epoch_of(first - 1) == 0 and schedule.epoch_of(last + 1) == 2


def test_parse_epoch_steps_rejects_bad_text():
    assert parse_epoch_steps('20,35,45') == [20, 35, 45]
    for bad in ('', 'a,b', '5,3', '0,2'):
        with pytest.raises(ValueError, match='lr epoch steps'):
            parse_epoch_steps(bad)
    assert math.isclose(StepSchedule(1.0, [1], 4, 8).lr_at(3), 1.0)
