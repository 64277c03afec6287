"""Test set-up shared by every module: the repository on sys.path, the data folders, the skip
markers of tests that need the developers' shared data, and shared fixtures. Builders shared by
several modules live in helpers.py (`from helpers import ...`); no test module imports
another."""
import os

import pytest

from helpers import FIXTURE_FACES, FIXTURES, ROOT, SHARED_DATA  # noqa: F401 (re-exported)


def shared_data_path(name):
    """`../shared/data/<name>` beside the repository (a folder or file stem)."""
    return os.path.join(SHARED_DATA, name)


def missing_shared_data(name, probe=None):
    """Why a test needing ../shared/data/<name> cannot run, or None if it can. `probe`: a path
    inside that folder that must exist (by default the folder itself)."""
    path = shared_data_path(name)
    target = os.path.join(path, probe) if probe else path
    if os.path.exists(target):
        return None
    return ('needs ../shared/data/%s (%s not found): the shared development data is not part '
            'of the repository' % (name + ('/' + probe if probe else ''), target))


def needs_shared_data(name, probe=None):
    """Mark: skip, naming the missing folder, unless ../shared/data/<name> exists."""
    reason = missing_shared_data(name, probe)
    return pytest.mark.skipif(reason is not None, reason=reason or 'present')


def shared_data_or_skip(name, probe=None):
    """The path of ../shared/data/<name>, or skip the calling test/fixture saying what is
    missing."""
    reason = missing_shared_data(name, probe)
    if reason:
        pytest.skip(reason)
    return shared_data_path(name)


def real_face_folders():
    """Folders of real annotated faces in the .pts format: the committed fixture faces (always
    there) and, when present, ../shared/data/smoke-2d (more faces, and non-BSD ones)."""
    return [pytest.param(FIXTURE_FACES, id='fixture-faces'),
            pytest.param(shared_data_path('smoke-2d'), id='shared-smoke-2d',
                         marks=needs_shared_data('smoke-2d'))]


@pytest.fixture(scope='module')
def synth_dir(tmp_path_factory):
    """A small synth2d data set (train 32, val 8, test 4) for train.py runs."""
    from data.synthetic import ensure_synthetic
    data_dir = str(tmp_path_factory.mktemp('synth2d'))
    ensure_synthetic(data_dir, counts={'train': 32, 'val': 8, 'test': 4}, workers=1)
    return data_dir
