"""Knowledge distillation (training/distillation.py, train.py --teacher)."""
import mxnet as mx
import numpy as np
import pytest

import train
from helpers import run_tiny_training
from test_train import face_batch, tiny_config
from inference.model import load_heatmap_model
from symbols.checkpoint import save_checkpoint
from training import Trainer
from training.distillation import mixed_targets, spatial_softmax
from training.trainer import seed_everything


def test_ce_targets_keep_the_label_mass_and_follow_the_teachers_softmax():
    _, labels = face_batch(2, seed=0)
    logits = np.random.RandomState(1).normal(0, 3, labels.shape).astype(np.float32)
    mass = labels.sum(axis=(2, 3), keepdims=True)
    teacher_only = mixed_targets(labels, logits, 'ce', 1.0)
    np.testing.assert_allclose(teacher_only.sum(axis=(2, 3), keepdims=True), mass, rtol=1e-5)
    np.testing.assert_allclose(teacher_only, spatial_softmax(logits) * mass, rtol=1e-5)
    np.testing.assert_allclose(spatial_softmax(logits).sum(axis=(2, 3)), 1.0, rtol=1e-6)
    quarter = mixed_targets(labels, logits, 'ce', 0.25)
    np.testing.assert_allclose(quarter, 0.75 * labels + 0.25 * teacher_only, rtol=1e-5,
                               atol=1e-6)
    # l2 maps are targets in the same units already: a plain mix.
    np.testing.assert_allclose(mixed_targets(labels, logits, 'l2', 0.25),
                               0.75 * labels + 0.25 * logits, rtol=1e-5, atol=1e-6)


def save_weights(trainer, prefix):
    """The trainer's present weights as checkpoint `prefix`, epoch 0; returns the prefix."""
    arg, aux = trainer.module.get_params()
    save_checkpoint(str(prefix), 0, trainer.symbol, arg, aux)
    return str(prefix)


def save_teacher(prefix, net_loss='ce', data=None, label=None):
    """The tiny network as a checkpoint (epoch 0): random weights, or trained for 30 batches
    on `data` and `label`."""
    seed_everything(5)
    if data is None:
        data, label = face_batch(4, seed=3)
    train_iter = mx.io.NDArrayIter(data, label, 4, label_name='softmax_label')
    trainer = Trainer(tiny_config(prefix, net_loss=net_loss, lr=1e-2), [mx.cpu()], train_iter,
                      len(data), max_batches=30 if label is not None else 0)
    trainer.run()
    return save_weights(trainer, prefix)


def student_teacher_gap(prefix, teacher_prefix, data):
    """Mean KL divergence of the student's map softmax from the teacher's, on `data`."""
    student = spatial_softmax(load_heatmap_model(prefix, 0).predict_planes(data), np.float64)
    teacher = spatial_softmax(load_heatmap_model(teacher_prefix, 0).predict_planes(data),
                              np.float64)
    return float(np.mean(np.sum(teacher * (np.log(teacher) - np.log(student)), axis=(2, 3))))


def test_student_trained_on_teacher_targets_moves_towards_the_teacher(tmp_path):
    # The teacher learnt other points on the same images than the labels the student gets.
    data, label = face_batch(8, seed=0)
    teacher = save_teacher(tmp_path / 'teacher', data=data, label=face_batch(8, seed=9)[1])
    gaps = {}
    for name, extra in (('plain', dict()),
                        ('distilled', dict(teacher=teacher, teacher_weight=1.0))):
        seed_everything(0)
        train_iter = mx.io.NDArrayIter(data, label, 4, shuffle=False,
                                       label_name='softmax_label')
        prefix = tmp_path / name
        trainer = Trainer(tiny_config(prefix, net_loss='ce', lr=1e-2, **extra), [mx.cpu()],
                          train_iter, 8, max_batches=60)
        start = save_weights(trainer, tmp_path / ('%s-start' % name))
        gaps[name + ' start'] = student_teacher_gap(start, teacher, data)
        if name == 'distilled':
            # The batch the module sees: the teacher's maps, at the labels' mass.
            batch = next(iter(mx.io.NDArrayIter(data[:4], label[:4], 4,
                                                label_name='softmax_label')))
            expected = mixed_targets(label[:4], load_heatmap_model(teacher, 0).predict_planes(
                data[:4]), 'ce', 1.0)
            np.testing.assert_allclose(trainer.teacher.relabel(batch).label[0].asnumpy(),
                                       expected, rtol=1e-4, atol=1e-4)
        trainer.run()
        gaps[name] = student_teacher_gap(save_weights(trainer, prefix), teacher, data)
    # Both runs start from the same weights. Trained on the labels the student moves far from
    # the teacher (KL 0.20 -> 2.7 seen after 30 batches); trained on the teacher's maps it
    # comes closer: 0.13-0.16 after 60 batches in three runs whose targets differed only in
    # the last bits. After 30 batches the same three ended at 0.18-0.20, too near the start to
    # tell: the run is that sensitive to rounding, so 60.
    assert gaps['plain start'] == pytest.approx(gaps['distilled start'])
    assert gaps['distilled'] < gaps['distilled start']
    assert gaps['distilled'] < 0.2 * gaps['plain']


def test_teacher_of_other_units_or_weight_is_refused(tmp_path):
    l2_teacher = save_teacher(tmp_path / 'l2', net_loss='l2')
    data, label = face_batch(4, seed=0)
    for extra, message in ((dict(teacher=l2_teacher), 'trained with the l2 loss, the student '
                                                      'uses ce'),
                           (dict(teacher=l2_teacher, net_loss='l2', teacher_weight=0.0),
                            'teacher-weight must be in')):
        train_iter = mx.io.NDArrayIter(data, label, 4, label_name='softmax_label')
        settings = dict(dict(net_loss='ce'), **extra)
        with pytest.raises(ValueError, match=message):
            Trainer(tiny_config(tmp_path / 'student', **settings), [mx.cpu()], train_iter, 4)


def test_teacher_flags(tmp_path, synth_dir):
    cfg = train.build_config(train.parse_args(['--teacher', 'runs/big,12', '--teacher-weight',
                                               '0.3', '--teacher-flip-test']))
    assert (cfg['teacher'], cfg['teacher_epoch'], cfg['teacher_weight'],
            cfg['teacher_flip_test']) == ('runs/big', 12, 0.3, True)
    folder = train.build_config(train.parse_args(['--teacher', 'models/some-model']))
    assert (folder['teacher'], folder['teacher_epoch'], folder['teacher_flip_test']) == (
        'models/some-model', 0, False)
    assert train.build_config(train.parse_args([]))['teacher'] == ''
    for argv, message in ((['--teacher-flip-test'], 'need --teacher'),
                          (['--teacher', 'x,1', '--teacher-weight', '1.5'], 'teacher-weight'),
                          (['--teacher', 'x,y'], 'PREFIX,EPOCH or a model folder')):
        with pytest.raises(ValueError, match=message):
            args = train.parse_args(argv)
            train.check_args(args)
            train.build_config(args)
    # A teacher that is not there: one line, before any training.
    proc = run_tiny_training(synth_dir, tmp_path / 'model', '--teacher',
                             str(tmp_path / 'none') + ',0')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'none-symbol.json' in proc.stderr.strip().splitlines()[-1]
