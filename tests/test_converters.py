"""Converters: .pts/.mat readers, the record transform, packers, splits and the pack_rec CLI."""
import os
import signal
import subprocess
import sys
import time

import cv2
import mxnet as mx
import numpy as np
import pytest
import scipy.io

from conftest import ROOT, needs_shared_data, real_face_folders, shared_data_path
from helpers import synthetic_face
from data import converters, geometry
from data.readers import read_pts
from data.recordio import split_paths, unpack_record
from data.geometry import (compose_affine, crop_transform, invert_affine,
                           protocol_transforms, warp_points)

AFLW_SAMPLE = shared_data_path('aflw2000-3d-sample')


def read_rec(prefix):
    idx_path, rec_path = split_paths(prefix)
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'r')
    records = [unpack_record(reader.read_idx(key)) for key in sorted(reader.keys)]
    reader.close()
    return records


def write_pts(path, points, header=True, one_based=True):
    rows = ['%.3f %.3f' % tuple(p + (1 if one_based else 0)) for p in points]
    if header:
        rows = ['version: 1', 'n_points:  %d' % len(points), '{'] + rows + ['}']
    with open(path, 'w') as handle:
        handle.write('\n'.join(rows) + '\n')


def make_pts_folder(folder, count=6, seed=0):
    rng = np.random.RandomState(seed)
    truth = {}
    for i in range(count):
        image, points = synthetic_face(rng)
        cv2.imwrite(os.path.join(folder, 'face%02d.png' % i), image)
        write_pts(os.path.join(folder, 'face%02d.pts' % i), points)
        truth['face%02d' % i] = (image, points)
    return truth


def test_read_pts_with_and_without_header_agree(tmp_path):
    points = np.random.RandomState(1).uniform(0, 400, size=(68, 2))
    write_pts(str(tmp_path / 'a.pts'), points, header=True)
    write_pts(str(tmp_path / 'b.pts'), points, header=False)
    with_header, bare = read_pts(str(tmp_path / 'a.pts')), read_pts(str(tmp_path / 'b.pts'))
    np.testing.assert_allclose(with_header, bare)
    np.testing.assert_allclose(with_header, points, atol=1e-3)  # file is 1-based


@pytest.mark.parametrize('content, problem', [
    ('version: 1\nn_points: 60\n{\n' + '1 2\n' * 60 + '}\n', 'expected 68 points, found 60'),
    ('version: 1\nn_points: 68\n{\n' + '1 2\n' * 67 + '}\n', 'header says 68'),
    ('version: 1\nn_points: 68\n{\n' + '1 2\n' * 68, 'closing'),
    ('1 2 3\n' * 68, 'two numbers'),
])
def test_read_pts_rejects_bad_files_naming_them(tmp_path, content, problem):
    path = tmp_path / 'bad.pts'
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as err:
        read_pts(str(path))
    assert str(path) in str(err.value)


def test_training_crop_of_a_record_is_the_protocol_crop_whatever_the_pose():
    rng = np.random.RandomState(2)
    _, points = synthetic_face(rng)
    for top_shift in (30, 40):
        to_record = geometry.record_transform(points, top_shift=top_shift)
        record_points = warp_points(points, to_record)
        # The unrotated training crop at scale ratio 1 (docs/data-format.md §5) ...
        training_crop = crop_transform((192, 192), 128, 256, 0)
        # ... of the record equals the protocol crop (docs/protocol.md §3) of the source image.
        m_align, m_crop = protocol_transforms(points, top_shift)
        np.testing.assert_allclose(warp_points(record_points, training_crop),
                                   warp_points(points, compose_affine(m_align, m_crop)),
                                   atol=1e-3)
        # The protocol box is centred in the record (up to the protocol's integer centre, one
        # aligned pixel), its crop side base_scale.
        aligned = warp_points(points, m_align)
        box = np.concatenate([aligned.min(axis=0), aligned.max(axis=0)])
        box[1] -= top_shift
        record_box = warp_points(box.reshape(2, 2), compose_affine(invert_affine(m_align),
                                                                   to_record)).ravel()
        side = 1.2 * (record_box[2:] - record_box[:2]).max()
        assert side == pytest.approx(256, rel=1e-6)
        aligned_pixel = side / (1.2 * (box[2:] - box[:2]).max())
        assert np.all(np.abs((record_box[:2] + record_box[2:]) / 2 - 192) <= aligned_pixel)
    # Any similarity of the source face gives the same record points.
    record_points = warp_points(points, geometry.record_transform(points))
    moved = points @ np.array([[0.0, -2.0], [2.0, 0.0]]).T + (500, 40)
    np.testing.assert_allclose(warp_points(moved, geometry.record_transform(moved)),
                               record_points, atol=1e-3)
    # A larger base scale makes the face proportionally larger about the record centre.
    bigger = warp_points(points, geometry.record_transform(points, 384, 320))
    np.testing.assert_allclose(bigger - 192, (record_points - 192) * 320 / 256, atol=1e-3)


def check_round_trip(prefix, sources):
    records = read_rec(prefix)
    assert len(records) == len(sources)
    for (image, points, record_id), (name, (source_image, source_points)) in zip(
            records, sorted(sources.items())):
        assert image.shape == (384, 384, 3), name
        expected = warp_points(source_points, geometry.record_transform(source_points))
        np.testing.assert_allclose(points, expected, atol=0.5, err_msg=name)
        reference, _ = geometry.make_record(source_image, source_points)
        assert np.abs(image.astype(int) - reference).mean() < 4, name  # JPEG loss only


@pytest.mark.parametrize('faces', real_face_folders())
def test_pack_real_pts_folder_round_trip(tmp_path, faces):
    summary = converters.pack_pts_folder(faces, str(tmp_path))
    stems = sorted(f[:-4] for f in os.listdir(faces) if f.endswith('.pts'))
    assert summary.written == {'train': len(stems)} and not summary.skipped
    sources = {s: (cv2.imread(os.path.join(faces, s + '.jpg')),
                   read_pts(os.path.join(faces, s + '.pts'))) for s in stems}
    check_round_trip(str(tmp_path / 'train'), sources)


@needs_shared_data('aflw2000-3d-sample')
def test_pack_aflw2000_round_trip_uses_projected_3d_points(tmp_path):
    summary = converters.pack_aflw2000(AFLW_SAMPLE, str(tmp_path))
    stems = sorted(f[:-4] for f in os.listdir(AFLW_SAMPLE) if f.endswith('.mat'))
    assert summary.written == {'AFLW2000-3D': len(stems)} and not summary.skipped
    sources = {}
    for stem in stems:
        pt3d = scipy.io.loadmat(os.path.join(AFLW_SAMPLE, stem + '.mat'))['pt3d_68']
        sources[stem] = (cv2.imread(os.path.join(AFLW_SAMPLE, stem + '.jpg')), pt3d[:2].T - 1)
    check_round_trip(str(tmp_path / 'AFLW2000-3D'), sources)


def test_bad_samples_are_skipped_and_reported(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    truth = make_pts_folder(str(folder), count=3)
    (folder / 'broken.jpg').write_bytes(b'not a jpeg at all')
    write_pts(str(folder / 'broken.pts'), truth['face00'][1])
    cv2.imwrite(str(folder / 'short.png'), truth['face00'][0])
    write_pts(str(folder / 'short.pts'), truth['face00'][1][:60])
    write_pts(str(folder / 'outside.pts'), truth['face00'][1] + 1000)
    cv2.imwrite(str(folder / 'outside.png'), truth['face00'][0])
    write_pts(str(folder / 'noimage.pts'), truth['face00'][1])
    summary = converters.pack_pts_folder(str(folder), str(tmp_path / 'out'))
    assert summary.written == {'train': 3}
    reasons = dict(summary.skipped)
    assert sorted(reasons) == ['broken', 'noimage', 'outside', 'short']
    assert 'broken.jpg: not a readable image' in reasons['broken']
    assert 'short.pts: expected 68 points, found 60' in reasons['short']
    assert 'outside the 300x300 image' in reasons['outside']
    assert 'no image' in reasons['noimage']
    assert 'skipped 4' in str(summary)
    check_round_trip(str(tmp_path / 'out' / 'train'), truth)


def test_points_off_the_image_can_be_kept(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    image, points = synthetic_face(np.random.RandomState(6))
    cut = image[:, :int(points[:, 0].max()) - 3]  # the rightmost points leave the photo
    cv2.imwrite(str(folder / 'cut.png'), cut)
    write_pts(str(folder / 'cut.pts'), points)
    with pytest.raises(ValueError, match='no sample could be packed'):
        converters.pack_pts_folder(str(folder), str(tmp_path / 'a'))
    summary = converters.pack_pts_folder(str(folder), str(tmp_path / 'b'),
                                         keep_outside_image=True)
    assert summary.written == {'train': 1} and not summary.skipped
    check_round_trip(str(tmp_path / 'b' / 'train'), {'cut': (cut, points)})
    # The record is laid out around the face's own box, so even a stray point stays inside.
    stray = points.copy()
    stray[8] += (0, 400)
    record_points = warp_points(stray, geometry.record_transform(stray))
    assert np.all((record_points > 0) & (record_points < 383))


def test_no_usable_sample_fails_and_leaves_no_files(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    write_pts(str(folder / 'lonely.pts'), np.zeros((68, 2)))
    with pytest.raises(ValueError, match='no sample could be packed'):
        converters.pack_pts_folder(str(folder), str(tmp_path / 'out'))
    assert not os.path.exists(tmp_path / 'out') or not os.listdir(tmp_path / 'out')


def test_val_fraction_split_is_deterministic_and_disjoint(tmp_path):
    names = ['n%03d' % i for i in range(50)]
    first = converters.assign_splits(names, 'train', val_fraction=0.2, seed=7)
    assert first == converters.assign_splits(list(reversed(names)), 'train',
                                             val_fraction=0.2, seed=7)
    val = {n for n, split in first.items() if split == 'val'}
    train = {n for n, split in first.items() if split == 'train'}
    assert len(val) == 10 and not val & train and val | train == set(names)
    other = converters.assign_splits(names, 'train', val_fraction=0.2, seed=8)
    assert {n for n, split in other.items() if split == 'val'} != val

    folder = tmp_path / 'faces'
    folder.mkdir()
    truth = make_pts_folder(str(folder), count=6)
    runs = []
    for run in ('a', 'b'):
        summary = converters.pack_pts_folder(str(folder), str(tmp_path / run),
                                             val_fraction=0.34, seed=3)
        assert summary.written == {'train': 4, 'val': 2}
        runs.append([open(tmp_path / run / f, 'rb').read() for f in ('train.rec', 'val.rec')])
    assert runs[0] == runs[1]
    split_of = converters.assign_splits(truth, 'train', val_fraction=0.34, seed=3)
    for split in ('train', 'val'):
        check_round_trip(str(tmp_path / 'a' / split),
                         {n: v for n, v in truth.items() if split_of[n] == split})


def test_list_file_selects_val_or_a_named_split(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    truth = make_pts_folder(str(folder), count=4)
    listing = tmp_path / 'held_out.txt'
    listing.write_text('face01\n\nface03\nghost\n')
    summary = converters.pack_pts_folder(str(folder), str(tmp_path / 'a'),
                                         list_file=str(listing))
    assert summary.written == {'train': 2, 'val': 2} and summary.missing == ['ghost']
    check_round_trip(str(tmp_path / 'a' / 'val'),
                     {n: truth[n] for n in ('face01', 'face03')})
    summary = converters.pack_pts_folder(str(folder), str(tmp_path / 'b'),
                                         list_file=str(listing), split='ibug')
    assert summary.written == {'ibug': 2}
    assert sorted(os.listdir(tmp_path / 'b')) == ['ibug.idx', 'ibug.meta.json', 'ibug.rec']


def make_cofw_annotations(folder, count, rng):
    faces = []
    for n in range(1, count + 1):
        image, points = synthetic_face(rng)
        scipy.io.savemat(os.path.join(folder, '%d_points.mat' % n),
                         {'Points': points + 1, 'Occ': np.zeros((1, 68))})
        faces.append((image, points))
    return faces


def test_pack_cofw_from_points_mat_and_image_folder(tmp_path):
    annotations, images = tmp_path / 'test_annotations', tmp_path / 'images'
    annotations.mkdir()
    images.mkdir()
    faces = make_cofw_annotations(str(annotations), 3, np.random.RandomState(4))
    for n, (image, _) in enumerate(faces, 1):
        cv2.imwrite(str(images / ('%d.png' % n)), image)
    summary = converters.pack_cofw(str(annotations), str(images), str(tmp_path / 'out'))
    assert summary.written == {'cofw_testset': 3}
    check_round_trip(str(tmp_path / 'out' / 'cofw_testset'),
                     {'%d_points' % n: face for n, face in enumerate(faces, 1)})


def test_pack_cofw_from_cofw_test_color_mat(tmp_path):
    annotations = tmp_path / 'test_annotations'
    annotations.mkdir()
    faces = make_cofw_annotations(str(annotations), 3, np.random.RandomState(5))
    # The .mat holds RGB images; make the second one grey as some COFW images are.
    grey = cv2.cvtColor(faces[1][0], cv2.COLOR_BGR2GRAY)
    faces[1] = (cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), faces[1][1])
    cells = np.empty((len(faces), 1), dtype=object)
    cells[:, 0] = [faces[0][0][:, :, ::-1], grey, faces[2][0][:, :, ::-1]]
    mat_path = str(tmp_path / 'COFW_test_color.mat')
    scipy.io.savemat(mat_path, {'IsT': cells})
    scipy.io.savemat(str(annotations / '4_points.mat'), {'Points': faces[0][1] + 1})
    summary = converters.pack_cofw(str(annotations), mat_path, str(tmp_path / 'out'))
    assert summary.written == {'cofw_testset': 3}
    assert [n for n, _ in summary.skipped] == ['4_points']
    assert 'holds only 3 images' in summary.skipped[0][1]
    check_round_trip(str(tmp_path / 'out' / 'cofw_testset'),
                     {'%d_points' % n: face for n, face in enumerate(faces, 1)})


def run_cli(args, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'pack_rec', os.path.join(ROOT, 'scripts', 'pack_rec.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_packs_and_reports_errors_in_one_line(tmp_path, capsys):
    folder = tmp_path / 'faces'
    folder.mkdir()
    make_pts_folder(str(folder), count=4)
    code, out, _ = run_cli(['--format', 'pts', '--input', str(folder), '--output',
                            str(tmp_path / 'out'), '--val-fraction', '0.25', '--quality', '90'],
                           capsys)
    assert code == 0 and 'packed 4 faces' in out
    assert len(read_rec(str(tmp_path / 'out' / 'train'))) == 3
    missing = str(tmp_path / 'nowhere')
    code, _, err = run_cli(['--format', 'aflw2000', '--input', missing, '--output',
                            str(tmp_path / 'x')], capsys)
    assert code == 2 and err.strip() == 'error: %s: not a folder' % missing


def test_repacking_without_a_hold_out_removes_the_stale_val_split(tmp_path):
    """An old val.rec beside a new train.rec that now holds its faces would leak test faces
    into training: the repack removes it and says so; other data sets in the folder stay."""
    folder = tmp_path / 'faces'
    folder.mkdir()
    make_pts_folder(str(folder), count=6)
    out = tmp_path / 'out'
    converters.pack_pts_folder(str(folder), str(out), val_fraction=0.34, seed=3)
    converters.pack_pts_folder(str(folder), str(out), split='ibug')
    summary = converters.pack_pts_folder(str(folder), str(out))
    assert summary.written == {'train': 6}
    assert sorted(p.name for p in out.iterdir()) == ['ibug.idx', 'ibug.meta.json', 'ibug.rec',
                                                      'train.idx', 'train.meta.json',
                                                      'train.rec']
    assert 'removed stale splits' in str(summary) and 'val.rec' in str(summary)
    # Packing a named test split leaves the training splits alone.
    assert not converters.pack_pts_folder(str(folder), str(out), split='ibug').removed


def test_sigterm_during_packing_leaves_no_temporary_files_or_empty_folder(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    make_pts_folder(str(folder), count=400)
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'scripts', 'pack_rec.py'),
                             '--format', 'pts', '--input', str(folder), '--output', str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(out.glob('*.tmp')) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, 'packing finished before it could be stopped'
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    # Its half-written files are gone, and so is the output folder the run made.
    assert not out.exists()
