"""Atomic file writes: readers never see a half-written output or checkpoint. Output folders
are checked before long work, and a failed run does not leave an empty one behind."""
import contextlib
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


def _non_folder_on(path):
    """The deepest existing path at or above `path` when it is not a folder (a regular file
    in the way), else None."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path


def check_writable_dir(directory, what='output folder'):
    """Create `directory` if needed and prove it takes a new file, before any long work starts;
    ValueError of one line naming it otherwise (works for root too, which os.access does not:
    a path under a regular file, a read-only file system). The line says which step failed:
    the system's reason alone misleads, e.g. /proc exists but answers a new file with "No such
    file or directory"."""
    directory = directory or '.'
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        blocker = _non_folder_on(directory)
        if blocker == os.path.abspath(directory):
            reason = 'it is not a folder'
        elif blocker:
            reason = '%s is not a folder' % blocker
        else:
            reason = 'cannot create folder %s: %s' % (err.filename or directory,
                                                      err.strerror or err)
        raise ValueError('%s: %s cannot be written (%s)' % (directory, what, reason)) from None
    probe = os.path.join(directory, '.write-probe-%d' % os.getpid())
    try:
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as err:
        raise ValueError('%s: %s cannot be written (cannot create a file in it: %s)'
                         % (directory, what, err.strerror or err)) from None
    return directory


@contextlib.contextmanager
def removed_if_left_empty(directory):
    """Run the body; when it raises an error or is interrupted (Ctrl-C, or SIGTERM where the
    command turns it into SystemExit), remove the folders on `directory`'s path that did not
    exist before it and are still empty (deepest first), so a run that stopped early leaves no
    empty output folder behind. A folder that existed before, or that holds anything (an
    interrupted training run's resume state), is never removed."""
    created = []
    path = os.path.abspath(directory or '.')
    while not os.path.lexists(path):
        created.append(path)
        path = os.path.dirname(path)
    try:
        yield
    except BaseException:   # an interruption too: only empty folders go, nothing written
        for path in created:
            try:
                os.rmdir(path)
            except OSError:   # it holds something (or was never made): it stays
                pass
        raise
