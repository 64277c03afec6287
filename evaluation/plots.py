"""Pictures of evaluation results, drawn on matplotlib's Agg canvas directly (no pyplot, so
no display and no global backend choice)."""
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fileio import atomic_write

from . import metrics


def _figure():
    """A (figure, axes) pair of the size every evaluation plot uses, on its own Agg canvas."""
    figure = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _write_png(figure, path):
    """Write `figure` as a PNG atomically (a half-written picture never appears under
    `path`); returns `path`."""
    atomic_write(path, lambda tmp_path: figure.savefig(tmp_path, format='png',
                                                       bbox_inches='tight'))
    return path


def save_ced_plot(curves, path, max_error=0.10, title='Cumulative error distribution'):
    """Plot the CED of each `{label: per-image NME fractions}` up to `max_error` and write it
    as a PNG atomically (a half-written picture never appears under `path`)."""
    figure, axes = _figure()
    for label, errors in curves.items():
        thresholds, fraction = metrics.ced(errors, max_error)
        axes.plot(thresholds * 100, fraction * 100,
                  label='%s (AUC@%.2f %.4f)' % (label, max_error, metrics.auc(errors, max_error)))
    axes.set_xlim(0, max_error * 100)
    axes.set_ylim(0, 100)
    axes.set_xlabel('NME (%)')
    axes.set_ylabel('Images (%)')
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='lower right')
    return _write_png(figure, path)


def save_confidence_histogram(sample, path, thresholds=()):
    """Histogram of an evaluation.confidence.ConfidenceSample's on-face and off-face peak
    confidences, with the `thresholds` drawn as vertical lines; written atomically."""
    figure, axes = _figure()
    bins = [i / 40 for i in range(41)]
    axes.hist(sample.on_face, bins=bins, alpha=0.6, label='on faces (%d)' % len(sample.on_face))
    axes.hist(sample.off_face, bins=bins, alpha=0.6,
              label='one face width sideways (%d)' % len(sample.off_face))
    for threshold in thresholds:
        axes.axvline(threshold, color='black', linestyle='--', linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_xlabel('heatmap peak confidence')
    axes.set_ylabel('crops')
    axes.set_title('Peak confidence on and off faces')
    axes.legend(loc='upper left')
    return _write_png(figure, path)
