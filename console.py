"""What long jobs show a person: tqdm progress bars that stay quiet when the output is not a
terminal (CI logs, files), and the one logging set-up the command-line tools share.

Library modules only log (`logging.getLogger(__name__)`); a CLI calls `configure_logging()` so
those messages reach its standard output without breaking a progress bar in flight, and runs its
`main` through `run_cli`, the one error boundary of the command-line tools.
"""
import logging
import math
import numbers
import os
import re
import sys

from tqdm import tqdm


def progress(iterable=None, enabled=True, **options):
    """A tqdm bar (same arguments) drawn only when `enabled` and stderr is a terminal."""
    return tqdm(iterable, disable=None if enabled else True, **options)


def machine_load():
    """'load average a b c on N CPUs': what benchmarks print beside their timings, since a
    shared machine's load moves them."""
    return 'load average %.2f %.2f %.2f on %d CPUs' % (os.getloadavg() + (os.cpu_count(),))


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


# Terminal colour / cursor sequences (MXNet colours its error messages).
_ANSI = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]')


def error_line(err):
    """The informative line of an error: the last non-empty line of its message (MXNet puts a
    traceback header first and its reason last), ANSI escape codes removed."""
    lines = [line.strip() for line in _ANSI.sub('', str(err)).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _is_mxnet_error(err):
    # Looked up lazily: an MXNetError can only arise once mxnet has been imported, and this
    # layer-0 module must not import it.
    mx = sys.modules.get('mxnet')
    base = getattr(mx, 'base', None)
    return base is not None and isinstance(err, getattr(base, 'MXNetError', ()))


def expected_error_message(err):
    """One line describing an error a user's input or environment caused, or None for an
    unexpected error (a bug), which should keep its traceback."""
    if isinstance(err, OSError):
        reason = err.strerror or error_line(err)
        names = [n for n in (err.filename, err.filename2) if n]
        return '%s: %s' % (' -> '.join(str(n) for n in names), reason) if names else reason
    if isinstance(err, ValueError):
        return ' '.join(line.strip() for line in _ANSI.sub('', str(err)).splitlines()
                        if line.strip()) or type(err).__name__
    if _is_mxnet_error(err):
        return error_line(err)
    return None


def run_cli(main, argv=None):
    """Run a command-line `main(argv)` and return its exit code. Expected errors (ValueError,
    OSError such as PermissionError, MXNet errors caused by the options) become one line
    `error: ...` on stderr and exit code 2; any other exception keeps its traceback."""
    try:
        return main(argv)
    except Exception as err:   # noqa: BLE001 - sorted into expected and unexpected below
        message = expected_error_message(err)
        if message is None:
            raise
        sys.stdout.flush()
        print('error: %s' % message, file=sys.stderr)
        return 2


def check_range(flag, value, minimum=None, maximum=None, above=None):
    """ValueError naming `flag` and its allowed range when `value` is outside it (None, an
    unset option, passes). `minimum`/`maximum` are inclusive bounds, `above` an exclusive one."""
    if value is None:
        return
    if value != value:   # NaN
        raise ValueError('%s must be a number, got %s' % (flag, value))
    if above is not None and not value > above:
        raise ValueError('%s must be > %s, got %s' % (flag, above, value))
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValueError('%s must be in %s..%s, got %s' % (flag, minimum, maximum, value))
    if minimum is not None and value < minimum:
        raise ValueError('%s must be >= %s, got %s' % (flag, minimum, value))
    if maximum is not None and value > maximum:
        raise ValueError('%s must be <= %s, got %s' % (flag, maximum, value))


def check_number(name, value, integer=False, **bounds):
    """check_range for an argument of the Python API, which no argparse `type=` has
    converted first: TypeError naming `name` unless `value` is a number (an int when
    `integer`; True and False are neither), ValueError unless it is finite and within `bounds`
    (check_range's minimum, maximum, above)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError('%s must be %s, got %r'
                        % (name, 'an integer' if integer else 'a number', value))
    if not math.isfinite(value):
        raise ValueError('%s must be a finite number, got %r' % (name, value))
    check_range(name, value, **bounds)
