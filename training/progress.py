"""What a run shows and records: a tqdm bar per epoch, a JSON-lines log of every logged batch
and validation, and a PNG of the loss and NME curves redrawn at each validation."""
import json
import logging
import os
import time

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter


from console import progress
from fileio import atomic_write

logger = logging.getLogger(__name__)
PLAIN_NUMBER = FormatStrFormatter('%g')


class RunLog:
    """Appends records to `path` (JSON lines) and keeps the curves' history; a resumed run
    reads the existing file so its curves continue the interrupted ones."""

    def __init__(self, path, resume=False):
        self.path = path
        self.losses, self.nmes = [], []
        # A fresh run's log replaces an earlier one at its first record, not before: a run that
        # fails to start leaves the earlier log whole.
        self.mode = 'a' if resume else 'w'
        if resume and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        self._remember(json.loads(line))
                    except ValueError:
                        continue    # a line cut short by a hard kill

    def _remember(self, record):
        if record.get('kind') == 'train':
            self.losses.append((record['batch'], record['loss']))
        elif record.get('kind') == 'val':
            self.nmes.append((record['batch'], record['nme']))

    def write(self, record):
        record = dict(record, time=round(time.time(), 3))
        self._remember(record)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, self.mode) as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')
        self.mode = 'a'

    def plot(self, path):
        plot_runs({'': self}, path)


def plot_runs(runs, path):
    """One PNG of the training loss and validation NME curves of `runs` ({label: RunLog}),
    overlaid; each curve is named by its run's label and validation target."""
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_nme = fig.subplots(1, 2)
    labelled = False
    for label, run in runs.items():
        if run.losses:
            ax_loss.plot(*zip(*run.losses), lw=1, label=label or None)
        for target in sorted({t for _, nme in run.nmes for t in nme}):
            points = [(b, 100.0 * nme[target]) for b, nme in run.nmes if target in nme]
            ax_nme.plot(*zip(*points), marker='o', ms=3,
                        label=('%s %s' % (label, target)).strip())
            labelled = True
    ax_loss.set(xlabel='batch', ylabel='training loss', title='loss', yscale='log')
    # log scale: a fresh network starts near 100-200% and ends near 5%
    ax_nme.set(xlabel='batch', ylabel='NME (%)', title='validation NME', yscale='log')
    ax_nme.yaxis.set_major_formatter(PLAIN_NUMBER)
    ax_nme.yaxis.set_minor_formatter(PLAIN_NUMBER)
    if labelled:
        ax_nme.legend()
    if len(runs) > 1:
        ax_loss.legend()
    for ax in (ax_loss, ax_nme):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90))


class EpochBars:
    """One tqdm bar per epoch of the schedule, showing samples/s, loss and learning rate."""

    def __init__(self, schedule, enabled=True):
        self.schedule = schedule
        self.enabled = enabled
        self.bar, self.epoch = None, None

    def update(self, batch, samples_per_sec, loss, lr):
        if not self.enabled:
            return
        epoch = self.schedule.epoch_of(batch)
        if epoch != self.epoch:
            self.close()
            first, last = self.schedule.epoch_batches(epoch)
            self.bar = progress(total=last - first + 1, initial=batch - first,
                                desc='epoch %d' % epoch, unit='batch', dynamic_ncols=True,
                                mininterval=1.0)
            self.epoch = epoch
        self.bar.set_postfix_str('%.1f samples/s loss %.5f lr %.2e' % (samples_per_sec, loss, lr),
                                 refresh=False)
        self.bar.update(1)

    def report(self, batch, samples_per_sec, loss, lr):
        """Every `frequent` batches: a plain log line where no bar is drawn (stderr is not a
        terminal, e.g. a run's output sent to a file), as the original's Speedometer printed."""
        if self.bar is not None and self.bar.disable:
            self.write('[%d] epoch %d: %.1f samples/s loss %.5f lr %.2e'
                       % (batch, self.schedule.epoch_of(batch), samples_per_sec, loss, lr))

    def write(self, message):
        """Log a line (the CLIs show it above the bar; chief worker only)."""
        if self.enabled:
            logger.info(message)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
