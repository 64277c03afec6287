"""What long jobs show a person: tqdm progress bars that stay quiet when the output is not a
terminal (CI logs, files), and the one logging set-up the command-line tools share.

Library modules only log (`logging.getLogger(__name__)`); a CLI calls `configure_logging()` so
those messages reach its standard output without breaking a progress bar in flight.
"""
import logging
import sys

from tqdm import tqdm


def progress(iterable=None, enabled=True, **options):
    """A tqdm bar (same arguments) drawn only when `enabled` and stderr is a terminal."""
    return tqdm(iterable, disable=None if enabled else True, **options)


class _BarSafeHandler(logging.Handler):
    """Writes records to stdout through tqdm.write, above any bar that is being drawn."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:   # logging's contract: a broken handler must not raise
            self.handleError(record)


def configure_logging(level=logging.INFO):
    """Send the project's log records to stdout as plain lines (idempotent)."""
    root = logging.getLogger()
    if not any(isinstance(h, _BarSafeHandler) for h in root.handlers):
        handler = _BarSafeHandler()
        handler.setFormatter(logging.Formatter('%(message)s'))
        root.addHandler(handler)
    root.setLevel(level)
