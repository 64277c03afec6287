"""Bad input to the helper scripts (show_rec, demo, fit_shape_prior, export_onnx, bench_*,
model_summary, average_checkpoints, pack_rec, make_synthetic) and the data readers behind them:
each problem is one `error: ...` line naming the flag or file, before any long work."""
import os
import shutil

import numpy as np
import pytest

from helpers import write_synthetic_rec

from fileio import atomic_write

# /proc takes no new files, even for root.
NO_NEW_FILES = '/proc/x.png'
needs_proc = pytest.mark.skipif(not os.path.isdir('/proc'), reason='needs /proc')


def run_script(module, argv, capsys):
    """(exit code, stdout, stderr) of `module.main(argv)`; an argparse refusal is code 2."""
    try:
        code = module.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(result, phrase):
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert 'Traceback' not in err, err
    assert lines and phrase in lines[-1], err


@pytest.fixture(scope='module')
def rec(tmp_path_factory):
    return write_synthetic_rec(str(tmp_path_factory.mktemp('rec') / 'ibug'), count=3)


# 1-3. show_rec.py -----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def show_rec():
    from scripts import show_rec
    return show_rec


@pytest.mark.parametrize('argv, phrase', [
    (['--count', '0'], '--count must be >= 1'),
    (['--count', '-3'], '--count must be >= 1'),
    (['--aug-level', '7'], "--aug-level: invalid choice"),
])
def test_show_rec_refuses_bad_counts_and_levels(show_rec, rec, tmp_path, capsys, argv, phrase):
    assert_error(run_script(show_rec, [rec, '--out', tmp_path / 'x.png'] + argv, capsys), phrase)
    assert not os.listdir(str(tmp_path))


def test_show_rec_caps_the_count_at_the_records_in_the_file(show_rec, rec, tmp_path, capsys):
    out = tmp_path / 'sheet.png'
    code, _, err = run_script(show_rec, [rec, '--out', out, '--count', '100000'], capsys)
    assert code == 0, err
    import cv2
    # One row of 3 records above their 3 crops, 192-pixel tiles.
    assert cv2.imread(str(out)).shape == (2 * 192, 3 * 192, 3)


def test_show_rec_names_unreadable_record_files(show_rec, rec, tmp_path, capsys):
    out = tmp_path / 'x.png'
    zero = str(tmp_path / 'zero.rec')
    open(zero, 'w').close()
    shutil.copy(rec[:-4] + '.idx', zero[:-4] + '.idx')
    assert_error(run_script(show_rec, [zero, '--out', out], capsys),
                 '%s: empty record file (0 bytes)' % zero)
    empty_idx = str(tmp_path / 'emptyidx.rec')
    shutil.copy(rec, empty_idx)
    open(empty_idx[:-4] + '.idx', 'w').close()
    assert_error(run_script(show_rec, [empty_idx, '--out', out], capsys),
                 '%s.idx: index lists no records' % empty_idx[:-4])
    jpg = str(tmp_path / 'face.jpg')
    open(jpg, 'w').close()
    assert_error(run_script(show_rec, [jpg, '--out', out], capsys), '%s: not a .rec file' % jpg)
    assert not os.path.exists(str(out))


@needs_proc
def test_show_rec_names_the_output_it_cannot_write(show_rec, rec, capsys):
    assert_error(run_script(show_rec, [rec, '--out', NO_NEW_FILES], capsys),
                 '%s: cannot be written' % NO_NEW_FILES)


def test_atomic_write_names_the_path_not_its_temporary_file(tmp_path):
    def write(tmp):
        raise FileNotFoundError(2, 'No such file or directory', tmp)
    path = str(tmp_path / 'result.json')
    with pytest.raises(OSError) as info:
        atomic_write(path, write)
    assert info.value.filename == path and 'cannot be written' in info.value.strerror


# 4. pack_rec.py on damaged .mat files ----------------------------------------------------------

@pytest.fixture(scope='module')
def pack_rec():
    from scripts import pack_rec
    return pack_rec


def _aflw_folder(folder, count=2):
    """AFLW2000-3D style faces: <stem>.jpg + <stem>.mat (pt3d_68, Pose_Para)."""
    import cv2
    import scipy.io
    from helpers import synthetic_face
    os.makedirs(folder)
    for index in range(count):
        image, points = synthetic_face(np.random.RandomState(index))
        cv2.imwrite(os.path.join(folder, 'face%d.jpg' % index), image)
        pt3d = np.vstack([points.T + 1, np.zeros((1, 68))])
        scipy.io.savemat(os.path.join(folder, 'face%d.mat' % index),
                         {'pt3d_68': pt3d, 'Pose_Para': np.zeros((1, 7))})
    return folder


@pytest.mark.parametrize('content', [b'', b'junk\n'], ids=['zero-byte', 'junk'])
def test_pack_rec_skips_a_damaged_aflw2000_mat(pack_rec, tmp_path, capsys, content):
    folder = _aflw_folder(str(tmp_path / 'aflw'))
    shutil.copy(os.path.join(folder, 'face0.jpg'), os.path.join(folder, 'broken.jpg'))
    with open(os.path.join(folder, 'broken.mat'), 'wb') as f:
        f.write(content)
    code, out, err = run_script(pack_rec, ['--format', 'aflw2000', '--input', folder,
                                           '--output', tmp_path / 'out'], capsys)
    assert code == 0, err
    assert 'packed 2 faces' in out and 'broken.mat: unreadable .mat file' in out


def test_pack_rec_names_a_damaged_cofw_image_mat(pack_rec, tmp_path, capsys):
    annotations = tmp_path / 'annotations'
    annotations.mkdir()
    (annotations / '1_points.mat').write_bytes(b'junk\n')
    images = tmp_path / 'COFW_test_color.mat'
    images.write_bytes(b'')
    assert_error(run_script(pack_rec, ['--format', 'cofw', '--input', annotations, '--images',
                                       images, '--output', tmp_path / 'out'], capsys),
                 '%s: unreadable .mat file' % images)


# 5-6. demo.py and fit_shape_prior.py check before their long work ------------------------------

def _blocked(tmp_path):
    """A path under a regular file: no one, root included, can create it."""
    plain = tmp_path / 'plain-file'
    plain.write_text('x')
    return plain / 'sub'


@pytest.mark.parametrize('argv, phrase', [
    (['--steps', '0'], '--steps must be >= 1'),
    (['--steps', '-1'], '--steps must be >= 1'),
    (['--output', 'BLOCKED'], '--output folder cannot be written'),
])
def test_demo_checks_steps_and_output_first(tmp_path, capsys, argv, phrase):
    from scripts import demo
    argv = [str(_blocked(tmp_path)) if a == 'BLOCKED' else a for a in argv]
    if '--output' not in argv:
        argv += ['--output', str(tmp_path / 'out')]
    code, out, err = run_script(demo, argv, capsys)
    assert_error((code, out, err), phrase)
    assert out == ''   # nothing of the photo part ran


@pytest.mark.parametrize('argv, phrase', [
    (['--output', 'FOLDER'], '--output is a folder'),
    (['--output', 'BLOCKED'], '--output folder cannot be written'),
    (['--top-shift', '-4'], '--top-shift must be in 0..384'),
])
def test_fit_shape_prior_checks_output_and_top_shift_first(rec, tmp_path, capsys, argv,
                                                           phrase):
    from scripts import fit_shape_prior
    replace = {'FOLDER': str(tmp_path), 'BLOCKED': str(_blocked(tmp_path) / 'prior.npz')}
    # No model at --prefix: the checks come before it is loaded.
    argv = ['--prefix', str(tmp_path / 'no-model'), '--train', rec, '--val', rec] + [
        replace.get(a, a) for a in argv]
    assert_error(run_script(fit_shape_prior, argv, capsys), phrase)


# 7. model directories in export_onnx.py and bench_infer.py -------------------------------------

@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    from helpers import save_tiny_checkpoint
    folder = tmp_path_factory.mktemp('model-dir')
    save_tiny_checkpoint(str(folder / 'model'))
    # A second epoch, for average_checkpoints.
    shutil.copy(str(folder / 'model-0000.params'), str(folder / 'model-0001.params'))
    return str(folder)


def test_export_onnx_takes_a_model_directory(model_dir, tmp_path, capsys):
    from scripts import export_onnx
    output = tmp_path / 'm.onnx'
    code, out, err = run_script(export_onnx, ['--prefix', model_dir, '--output', output], capsys)
    assert code == 0, err
    assert output.is_file()


def test_bench_infer_times_the_checkpoint_of_a_model_directory(model_dir, monkeypatch, capsys):
    from scripts import bench_infer
    timed = []
    monkeypatch.setattr(bench_infer, 'benchmark_checkpoint',
                        lambda prefix, epoch, *args, **kwargs: timed.append(prefix) or [])
    monkeypatch.setattr(bench_infer, 'format_timings', lambda title, timings: title)
    code, _, err = run_script(bench_infer, ['--network', '', '--prefix', model_dir], capsys)
    assert code == 0, err
    assert timed == [os.path.join(model_dir, 'model')]


# 8. options given without the option they belong to, and ranges -------------------------------

def test_export_onnx_refuses_calibration_faces_without_calibration(model_dir, tmp_path, capsys):
    from scripts import export_onnx
    assert_error(run_script(export_onnx, ['--prefix', model_dir, '--output', tmp_path / 'm.onnx',
                                          '--calibration-faces', '3'], capsys),
                 '--calibration-faces given without --int8-calibration')
    assert not os.listdir(str(tmp_path))


@pytest.mark.parametrize('extra, phrase', [
    (['--aug-rotation', '20'], '--aug-rotation given without --bn-rec'),
    (['--seed', '3'], '--seed given without --bn-rec'),
    (['--bn-rec', 'REC', '--aug-rotation', '200'], '--aug-rotation must be in 0..180'),
    (['--bn-rec', 'REC', '--batch-size', '0'], '--batch-size must be >= 1'),
])
def test_average_checkpoints_refuses_bn_options_without_bn_rec(model_dir, rec, tmp_path, capsys,
                                                               extra, phrase):
    from scripts import average_checkpoints
    argv = ['--prefix', os.path.join(model_dir, 'model'), '--epochs', '0-1',
            '--output', tmp_path / 'avg' / 'model'] + [rec if a == 'REC' else a for a in extra]
    assert_error(run_script(average_checkpoints, argv, capsys), phrase)
    assert not os.path.exists(str(tmp_path / 'avg'))


def test_average_checkpoints_documented_bn_pass_still_parses(model_dir, rec, tmp_path, capsys):
    from scripts import average_checkpoints
    code, out, err = run_script(average_checkpoints, [
        '--prefix', os.path.join(model_dir, 'model'), '--epochs', '0-1', '--output',
        tmp_path / 'avg', '--bn-rec', rec, '--aug-shift', '0.03', '--batch-size', '2'], capsys)
    assert code == 0, err
    assert 'updated on %s' % rec in out


def _pts_folder(folder):
    from helpers import FIXTURE_FACES
    shutil.copytree(FIXTURE_FACES, folder)
    return folder


@pytest.mark.parametrize('extra, phrase', [
    (['--seed', '3'], '--seed given without --val-fraction'),
    (['--list', 'EMPTY'], 'empty.txt: list file names no samples'),
    (['--split', '../escape'], "--split '../escape' must be a plain file name"),
    (['--split', '..'], "--split '..' must be a plain file name"),
])
def test_pack_rec_refuses_ignored_seed_empty_list_and_escaping_split(pack_rec, tmp_path, capsys,
                                                                     extra, phrase):
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n')
    folder = _pts_folder(str(tmp_path / 'faces'))
    out = tmp_path / 'nest' / 'out'
    argv = ['--format', 'pts', '--input', folder, '--output', out] + [
        str(empty) if a == 'EMPTY' else a for a in extra]
    assert_error(run_script(pack_rec, argv, capsys), phrase)
    assert not list((tmp_path / 'nest').rglob('*.rec'))


def test_pack_samples_refuses_a_split_outside_the_output(tmp_path):
    from data.converters import check_split_name, pack_pts_folder
    with pytest.raises(ValueError, match='plain file name'):
        pack_pts_folder(_pts_folder(str(tmp_path / 'faces')), str(tmp_path / 'out'),
                        split=os.path.join('..', 'escape'))
    check_split_name('ibug')
    check_split_name(None)
    assert not os.path.exists(str(tmp_path / 'escape.rec'))


def test_make_synthetic_refuses_preview_count_without_preview(tmp_path, capsys):
    from scripts import make_synthetic
    assert_error(run_script(make_synthetic, ['--output', tmp_path / 'out', '--preview-count',
                                             '3'], capsys),
                 '--preview-count given without --preview')
    assert_error(run_script(make_synthetic, [
        '--output', tmp_path / 'out', '--num-train', '1', '--num-val', '0', '--num-test', '0',
        '--preview', _blocked(tmp_path) / 'p.png'], capsys), '--preview folder cannot be written')
    assert not os.path.exists(str(tmp_path / 'out'))   # checked before any face is rendered


def test_bench_infer_refuses_network_options_without_a_network(capsys):
    from scripts import bench_infer
    assert_error(run_script(bench_infer, ['--network', '', '--multiplier', '0.5'], capsys),
                 '--multiplier given with an empty --network')
    assert_error(run_script(bench_infer, ['--faces', '0'], capsys), '--faces must be >= 1')


@pytest.mark.parametrize('argv, phrase', [
    (['--input-size', '0'], '--input-size must be >= 1'),
    (['--multiplier', '0'], '--multiplier must be > 0'),
    (['--multiplier', '-1'], '--multiplier must be > 0'),
])
def test_model_summary_checks_its_ranges(capsys, argv, phrase):
    from scripts import model_summary
    assert_error(run_script(model_summary, argv + ['--models', 'hg2d3-cab'], capsys), phrase)


# 9. benchmark scripts -------------------------------------------------------------------------

@pytest.mark.parametrize('argv, phrase', [
    (['--rec', 'NONE'], 'none.rec: no such record file'),
    (['--rec', 'ZERO'], 'zero.rec: empty record file (0 bytes)'),
    (['--rec', 'REC', '--source', 'x'], '--source given with --rec'),
    (['--samples', '0'], '--samples must be >= 1'),
    (['--batch-size', '0'], '--batch-size must be >= 1'),
])
def test_bench_data_checks_options_and_the_rec_first(rec, tmp_path, capsys, argv, phrase):
    from scripts import bench_data
    zero = str(tmp_path / 'zero.rec')
    open(zero, 'w').close()
    shutil.copy(rec[:-4] + '.idx', zero[:-4] + '.idx')
    replace = {'NONE': str(tmp_path / 'none.rec'), 'ZERO': zero, 'REC': rec}
    assert_error(run_script(bench_data, [replace.get(a, a) for a in argv], capsys), phrase)


def test_bench_detect_skips_unreadable_faces_and_checks_min_sizes(tmp_path, capsys):
    from helpers import FIXTURE_FACES
    from scripts import bench_detect
    folder = _pts_folder(str(tmp_path / 'faces'))
    stems = sorted(os.path.join(folder, n[:-4]) for n in os.listdir(folder) if n.endswith('.pts'))
    with open(stems[0] + '.jpg', 'w') as f:
        f.write('not an image')
    with open(stems[1] + '.jpg', 'wb'):
        pass
    assert bench_detect.readable_faces(stems) == stems[2:]
    out = capsys.readouterr().out
    assert 'skipped 2 of %d faces' % len(stems) in out and stems[0] + '.jpg' in out
    assert_error(run_script(bench_detect, ['--data', FIXTURE_FACES, '--min-sizes', '0'], capsys),
                 '--min-sizes must be >= 1')


@pytest.mark.parametrize('argv, phrase', [
    (['--models', 'hg1d4-resnet@abc'], "multiplier of 'hg1d4-resnet@abc' must be a number > 0"),
    (['--models', 'hg1d4-resnet@-1'], "multiplier of 'hg1d4-resnet@-1' must be a number > 0"),
    (['--models', 'nope'], "unknown model 'nope'"),
    (['--batch-size', '0'], '--batch-size must be >= 1'),
    (['--batches', '0'], '--batches must be >= 1'),
    (['--data-dir', 'FILE'], '--data-dir is not a folder'),
])
def test_bench_train_checks_its_options_first(tmp_path, capsys, argv, phrase):
    from scripts import bench_train
    plain = tmp_path / 'plain'
    plain.write_text('x')
    assert_error(run_script(bench_train, [str(plain) if a == 'FILE' else a for a in argv],
                            capsys), phrase)


def test_iterator_throughput_refuses_a_file_of_which_no_record_can_be_read(tmp_path):
    # Every record decodes, but its landmarks lie far outside the image: each epoch is empty,
    # and the timing loop must stop instead of resetting forever.
    from config import generate_config
    from data.recordio import RecordWriter
    from scripts.original_data import iterator_samples_per_second
    prefix = str(tmp_path / 'far')
    with RecordWriter(prefix) as writer:
        for _ in range(2):
            writer.write(np.zeros((384, 384, 3), np.uint8), np.full((68, 2), 5000.0))
    cfg = generate_config('hourglass', 'i2d')
    with pytest.raises(ValueError, match=r'far.rec: no record could be read \(2 skipped; '
                                         r'first: landmarks far outside'):
        iterator_samples_per_second(prefix + '.rec', cfg, 8, 2, 0)


# 10. what failed on an output folder, empty record files, and outputs left behind -------------

@needs_proc
def test_check_writable_dir_says_which_step_failed(tmp_path):
    from fileio import check_writable_dir
    # /proc exists: its "No such file or directory" is about the file the probe creates.
    with pytest.raises(ValueError, match=r'^/proc: --output folder cannot be written \(cannot '
                                         r'create a file in it: '):
        check_writable_dir('/proc', '--output folder')
    with pytest.raises(ValueError, match=r'\(cannot create folder /proc/new: '):
        check_writable_dir('/proc/new/sub', '--output folder')
    blocked = _blocked(tmp_path)
    with pytest.raises(ValueError, match=r'cannot be written \(%s is not a folder\)$'
                                         % blocked.parent):
        check_writable_dir(str(blocked / 'deeper'), '--output folder')
    with pytest.raises(ValueError, match=r'cannot be written \(it is not a folder\)$'):
        check_writable_dir(str(blocked.parent), '--output folder')


def test_show_rec_refuses_an_out_that_is_not_a_png(show_rec, rec, tmp_path, capsys):
    out = tmp_path / 's.txt'
    assert_error(run_script(show_rec, [rec, '--out', out], capsys),
                 '%s: --out must end in .png' % out)
    assert not os.path.exists(str(out))


@pytest.mark.parametrize('idx', ['stale', 'empty', 'missing'])
def test_an_empty_record_file_is_named_in_one_line(show_rec, rec, tmp_path, capsys, idx):
    from data.records import RecordFile
    zero = str(tmp_path / 'zero.rec')
    open(zero, 'w').close()
    if idx == 'stale':
        shutil.copy(rec[:-4] + '.idx', zero[:-4] + '.idx')
    elif idx == 'empty':
        open(zero[:-4] + '.idx', 'w').close()
    with pytest.raises(ValueError, match='^%s: empty record file' % zero):
        RecordFile(zero)
    code, out, err = run_script(show_rec, [zero, '--out', tmp_path / 'x.png'], capsys)
    assert_error((code, out, err), '%s: empty record file (0 bytes)' % zero)
    assert out == '' and len(err.splitlines()) == 1   # no line per record of a stale index
    assert os.path.exists(zero[:-4] + '.idx') == (idx != 'missing')


def test_pack_rec_names_the_flags_a_val_fraction_conflicts_with(pack_rec, tmp_path, capsys):
    from data.converters import assign_splits
    folder = _pts_folder(str(tmp_path / 'faces'))
    listed = tmp_path / 'list.txt'
    listed.write_text('x\n')
    for extra, phrase in [(['--split', 'test'], '--val-fraction cannot be combined with --split'),
                          (['--list', listed], '--val-fraction cannot be combined with --list')]:
        assert_error(run_script(pack_rec, ['--format', 'pts', '--input', folder, '--output',
                                           tmp_path / 'out', '--val-fraction', '0.5'] + extra,
                                capsys), phrase)
    with pytest.raises(ValueError, match='val_fraction 0.5 cannot be combined with a named split'):
        assign_splits(['a', 'b'], 'train', val_fraction=0.5, split='test')
    assert not os.path.exists(str(tmp_path / 'out'))


def test_a_failed_pack_rec_removes_only_the_empty_folders_it_created(pack_rec, tmp_path, capsys):
    folder = tmp_path / 'faces'
    folder.mkdir()
    (folder / 'a.pts').write_text('not points\n')   # nothing can be packed
    existing = tmp_path / 'existing'
    existing.mkdir()
    for output in (tmp_path / 'nest' / 'out', existing, existing / 'new'):
        assert_error(run_script(pack_rec, ['--format', 'pts', '--input', folder,
                                           '--output', output], capsys),
                     'no sample could be packed')
    assert not os.path.exists(str(tmp_path / 'nest'))
    assert existing.is_dir() and not os.listdir(str(existing))


def test_export_onnx_removes_the_prior_of_an_earlier_export_only(model_dir, tmp_path, capsys):
    from data.shape_prior import ShapePrior, load_shape_prior
    from inference.model_dir import params_digest
    from scripts import export_onnx
    output = tmp_path / 'm.onnx'
    prior_path = tmp_path / 'm.shape-prior.npz'

    def prior(digest):
        return ShapePrior(np.zeros((68, 2)), np.eye(136), np.ones(136), np.ones(68),
                          params_sha256=digest)
    prior('sha256 of other weights').save(str(prior_path))
    code, out, err = run_script(export_onnx, ['--prefix', model_dir, '--output', output], capsys)
    assert code == 0, err
    assert 'removed %s' % prior_path in out and not prior_path.exists()
    # One fitted to these weights (fit_shape_prior.py --output) is the export's own.
    digest = params_digest(os.path.join(model_dir, 'model'), 0)
    prior(digest).save(str(prior_path))
    code, out, err = run_script(export_onnx, ['--prefix', model_dir, '--output', output], capsys)
    assert code == 0, err
    assert 'kept %s' % prior_path in out
    assert load_shape_prior(str(prior_path)).params_sha256 == digest


def test_export_onnx_refuses_an_output_that_is_not_onnx(tmp_path, capsys):
    # Its prior would be written as the folder's shape-prior.npz, a checkpoint's name.
    from scripts import export_onnx
    output = tmp_path / 'model'
    assert_error(run_script(export_onnx, ['--prefix', 'models/hg1d4-resnet-m025-300w',
                                          '--output', output], capsys),
                 '%s: --output must end in .onnx' % output)
    assert not os.listdir(tmp_path)
