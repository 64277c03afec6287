"""The original's learning-rate schedule as a pure function of the global batch count.

The original counts batches, converts them to epochs with `batch * batch_size // epoch_size`,
multiplies the rate by 0.2 right after the batch that first reaches each epoch step but the
last, and stops after the batch that first reaches the last step. Computing all of this from
the batch number alone makes a resumed run follow exactly the same schedule.
"""
# Imported by name: parameter servers unpickle ScheduleLR while `mxnet` is still initialising.
from mxnet.lr_scheduler import LRScheduler

DECAY = 0.2


def parse_epoch_steps(text):
    """'20,35,45' -> [20, 35, 45]; steps must be increasing positive integers."""
    try:
        steps = [int(s) for s in str(text).split(',') if s.strip()]
    except ValueError:
        raise ValueError('lr epoch steps must be comma-separated integers, got %r' % (text,))
    if not steps or steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError('lr epoch steps must be increasing positive integers, got %r' % (text,))
    return steps


class StepSchedule:
    """Batches are numbered from 1; `lr_at(k)` is the rate used by the k-th batch."""

    def __init__(self, base_lr, epoch_steps, batch_size, epoch_size):
        if batch_size < 1 or epoch_size < batch_size:
            raise ValueError('an epoch of %d samples holds no full batch of %d'
                             % (epoch_size, batch_size))
        self.base_lr = float(base_lr)
        self.epoch_steps = list(epoch_steps)
        self.batch_size = batch_size
        self.epoch_size = epoch_size
        # The batch after which the epoch counter first reaches each step: ceil(e * N / B).
        self.boundaries = [-(-e * epoch_size // batch_size) for e in self.epoch_steps]

    @property
    def total_batches(self):
        return self.boundaries[-1]

    def lr_at(self, batch):
        decays = sum(1 for b in self.boundaries[:-1] if b < batch)
        return self.base_lr * DECAY ** decays

    def same_rates_until(self, other, batch):
        """True when `other` gives every batch up to `batch` the rate this schedule gave it, so a
        run resumed at `batch` under `other` is the run that had `other` from the start."""
        if (self.base_lr, self.batch_size, self.epoch_size) != (
                other.base_lr, other.batch_size, other.epoch_size):
            return False
        return ([b for b in self.boundaries[:-1] if b < batch]
                == [b for b in other.boundaries[:-1] if b < batch])

    def epoch_of(self, batch):
        """The epoch the k-th batch belongs to (0-based)."""
        return (batch - 1) * self.batch_size // self.epoch_size

    def epoch_batches(self, epoch):
        """(first, last) batch numbers of an epoch, for progress bars."""
        first = -(-epoch * self.epoch_size // self.batch_size) + 1
        last = -(-(epoch + 1) * self.epoch_size // self.batch_size)
        return first, last


class ScheduleLR(LRScheduler):
    """An MXNet scheduler over `StepSchedule`, so the rate also follows the schedule where the
    optimizer runs on parameter servers (it is pickled to them with the optimizer)."""

    def __init__(self, schedule):
        super().__init__(base_lr=schedule.base_lr)
        self.schedule = schedule

    def __call__(self, num_update):
        return self.schedule.lr_at(max(num_update, 1))
