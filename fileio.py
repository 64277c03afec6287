"""Atomic file writes: readers never see a half-written output or checkpoint."""
import json
import os


def atomic_write(path, write):
    """Call `write(tmp_path)`, then move the finished file into place. An OSError about the
    temporary file is raised as one about `path`, the name the user gave."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = '%s.tmp%d' % (path, os.getpid())
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if tmp not in (err.filename, err.filename2):
            raise
        raise OSError(err.errno, 'cannot be written (%s)' % err.strerror, path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path, obj):
    """Write `obj` as JSON via a temporary file."""
    def write(tmp_path):
        with open(tmp_path, 'w') as f:
            json.dump(obj, f)
            f.write('\n')
    atomic_write(path, write)
    return path


def check_writable_dir(directory, what='output folder'):
    """Create `directory` if needed and prove it takes a new file, before any long work starts;
    ValueError of one line naming it otherwise (works for root too, which os.access does not:
    a path under a regular file, a read-only file system)."""
    directory = directory or '.'
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, '.write-probe-%d' % os.getpid())
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as err:
        raise ValueError('%s: %s cannot be written (%s)'
                         % (directory, what, err.strerror or err)) from None
    return directory
