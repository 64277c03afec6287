"""The shipped model (models/hg1d4-resnet-m025-300w) on 300-W faces held out of its training:
the same 10% split (seed 0) of ../shared/data/300w-train that the model card reports on."""
import glob
import os
import shutil

import mxnet as mx
import pytest

from conftest import ROOT, SHARED_DATA
from data.converters import assign_splits, pack_pts_folder
from evaluation.protocol import evaluate_rec
from inference import HeatmapModel

SHIPPED = os.path.join(ROOT, 'models', 'hg1d4-resnet-m025-300w', 'model')
FACES = os.path.join(SHARED_DATA, '300w-train')
SAMPLE = 40
# Measured 6.27% NME on these 40 faces (5.49% on all 201); dlib's predictor scores 7.06% on the
# 201 with its own box convention (scripts/compare_dlib.py).
SHIPPED_NME_BOUND = 0.07


def held_out_names():
    names = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(FACES, '*.pts'))]
    split_of = assign_splits(names, 'train', val_fraction=0.1, seed=0)
    return sorted(name for name, split in split_of.items() if split == 'val')


def test_shipped_model_on_held_out_300w_faces(tmp_path):
    if not os.path.isdir(FACES):
        pytest.skip('shared 300-W training faces not available')
    names = held_out_names()
    assert len(names) == 201
    folder = tmp_path / 'faces'
    folder.mkdir()
    for name in names[:SAMPLE]:
        for path in glob.glob(os.path.join(FACES, name + '.*')):
            shutil.copy(path, str(folder))
    rec = pack_pts_folder(str(folder), str(tmp_path / 'rec'), split='300W').paths['300W']
    model = HeatmapModel(SHIPPED, 0, ctx=mx.cpu())
    result = evaluate_rec(model, rec, '300W', '2d', progress=False)
    assert len(result.record_ids) == SAMPLE and not result.skipped
    assert result.mean_nme < SHIPPED_NME_BOUND
