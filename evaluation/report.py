"""Writing an evaluation's results: summary text, JSON files and the CED curve."""
import os

from fileio import write_json_atomic

from .plots import save_ced_plot
from .protocol import FAILURE_THRESHOLDS


def summary_lines(result):
    """The printed report: the original's `nme on <dataset> is x.xxx%` line first."""
    lines = [result.summary_line]
    if result.record_ids:
        error = result.nme_standard_error
        spread = '-' if error is None else '%.3f points' % (error * 100)
        lines.append('  standard error of the mean %s  ' % spread + '  '.join(
            'AUC@%.2f %.4f  failure@%.2f %.2f%%' % (t, result.auc(t), t,
                                                     result.failure_rate(t) * 100)
            for t in FAILURE_THRESHOLDS))
    if result.yaw_bins:
        by_yaw = result.yaw_bins
        lines.append('  NME by |yaw|: ' + '  '.join(
            '%s %s (%d)' % (b['bin'], '-' if b['nme'] is None else '%.3f%%' % (b['nme'] * 100),
                            b['images']) for b in by_yaw['bins'])
            + '  mean %s' % ('-' if by_yaw['mean'] is None else '%.3f%%' % (by_yaw['mean'] * 100)))
    lines.append('  images %d, skipped %d%s; decode %s%s, %s ground truth' % (
        len(result.record_ids), len(result.skipped),
        ', detector %s%s' % (result.detector, '' if result.refine == 'none'
                                        else ' + refine (%s)' % result.refine)
        if result.detector else '', result.decode,
        ' with flip test' if result.flip_test else '',
        _ground_truth_label(result))
        + (', shape prior' if result.shape_prior else '')
        + (', crops tilted %g degrees' % result.tilt if result.tilt else '')
        + ('' if result.detector or result.top_shift is None
           else ', top shift %d' % result.top_shift))
    lines.extend('  skipped record %d: %s' % skip for skip in result.skipped)
    return lines


def _ground_truth_label(result):
    """How the ground truth was snapped in the crop: 2D floors it, 3D rounds it."""
    word = 'floored' if result.landmark_type == '2d' else 'rounded'
    return word if result.floored_ground_truth else 'un' + word


def save_evaluation(result, output_dir):
    """Write `<dataset>_results.json`, `<dataset>_per_landmark.json` and `<dataset>_ced.png`
    into `output_dir`; return their paths."""
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.join(output_dir, result.dataset)
    nme = result.nme
    per_image = [{'record_id': rid, 'nme': float(err), 'prediction': pred.tolist(),
                  'ground_truth': gt.tolist()}
                 for rid, err, pred, gt in zip(result.record_ids, nme, result.predictions,
                                               result.ground_truth)]
    if result.yaw is not None:
        for entry, yaw in zip(per_image, result.yaw):
            entry['yaw'] = float(yaw)
    results = dict(result.summary(), points='x, y in record-image pixels', per_image=per_image,
                   skipped=[{'record_id': rid, 'reason': why} for rid, why in result.skipped])
    paths = {'results': write_json_atomic(stem + '_results.json', results)}
    per_landmark = {'dataset': result.dataset, 'normaliser': result.normaliser,
                    'mean_error': result.per_landmark_error.tolist()}
    paths['per_landmark'] = write_json_atomic(stem + '_per_landmark.json', per_landmark)
    if result.record_ids:
        paths['ced'] = save_ced_plot({result.dataset: nme}, stem + '_ced.png', max_error=0.10,
                                     title='CED on %s (%s NME)' % (result.dataset,
                                                                   result.normaliser))
    return paths
