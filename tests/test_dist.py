"""Distributed training over loopback: launch_dist.py with two workers and a server (the
synth_dir fixture comes from conftest.py)."""
import json
import os
import subprocess
import sys

from conftest import ROOT
from helpers import train_command


def end_record(log_path):
    with open(log_path) as f:
        return [json.loads(line) for line in f if '"kind": "end"' in line][-1]


def test_two_workers_and_a_server_on_loopback_end_with_identical_weights(synth_dir, tmp_path):
    prefix = tmp_path / 'model'
    worker = train_command(synth_dir, prefix, '--kvstore', 'dist_sync', '--max-steps', '6',
                           '--lr-epoch-step', '4', '--verbose', '100')
    launch = [sys.executable, os.path.join(ROOT, 'scripts', 'launch_dist.py'), '-n', '2', '-s',
              '1', '--'] + worker
    result = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    chief = end_record('%s-log.jsonl' % prefix)
    other = end_record('%s-log-rank1.jsonl' % prefix)
    assert chief['batch'] == other['batch'] == 6
    assert chief['weights_sha1'] == other['weights_sha1']

    # The same start without training: the workers' weights did move.
    untrained = tmp_path / 'untrained'
    subprocess.run(train_command(synth_dir, untrained, '--max-steps', '0', '--lr-epoch-step', '4'),
                   cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert end_record('%s-log.jsonl' % untrained)['weights_sha1'] != chief['weights_sha1']


def test_hostfile_mode_starts_remote_roles_through_ssh(synth_dir, tmp_path):
    """There is no sshd here, so a stand-in `ssh` first on PATH logs the host it was asked for
    and runs the remote command line locally: what launch_dist builds for a remote host (cd,
    PYTHONPATH, the DMLC exports and the quoting) really runs, on two loopback addresses."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    calls = tmp_path / 'ssh-calls.txt'
    fake_ssh = bin_dir / 'ssh'
    fake_ssh.write_text('#!/bin/sh\nwhile [ "$1" = "-o" ]; do shift 2; done\n'
                        'echo "$1" >> %s\nshift\nexec sh -c "$1"\n' % calls)
    fake_ssh.chmod(0o755)
    hosts = tmp_path / 'hosts.txt'
    hosts.write_text('127.0.0.1\n\n127.0.0.2   # the second machine\n')
    prefix = tmp_path / 'model'
    worker = train_command(synth_dir, prefix, '--kvstore', 'dist_sync', '--max-steps', '4',
                           '--lr-epoch-step', '4', '--verbose', '100')
    launch = [sys.executable, os.path.join(ROOT, 'scripts', 'launch_dist.py'), '-n', '2', '-s',
              '1', '-H', str(hosts), '--scheduler-host', '127.0.0.1', '--'] + worker
    env = dict(os.environ, PATH=str(bin_dir) + os.pathsep + os.environ['PATH'])
    result = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=110)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Round robin: server 0 and worker 0 on the first host, worker 1 on the second.
    assert sorted(calls.read_text().split()) == ['127.0.0.1', '127.0.0.1', '127.0.0.2']
    chief = end_record('%s-log.jsonl' % prefix)
    other = end_record('%s-log-rank1.jsonl' % prefix)
    assert chief['batch'] == other['batch'] == 4
    assert chief['weights_sha1'] == other['weights_sha1']
