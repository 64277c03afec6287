"""Distributed training: launch_dist.py with two workers and a server, all on loopback, then
through ssh (a stand-in and a real OpenSSH server). The synth_dir fixture comes from
conftest.py."""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from conftest import ROOT
from helpers import train_command

LAUNCH_DIST = os.path.join(ROOT, 'scripts', 'launch_dist.py')


def end_record(log_path):
    with open(log_path) as f:
        return [json.loads(line) for line in f if '"kind": "end"' in line][-1]


def assert_workers_agree(prefix, steps):
    """Both workers ran `steps` batches and ended with the same weights."""
    chief = end_record('%s-log.jsonl' % prefix)
    other = end_record('%s-log-rank1.jsonl' % prefix)
    assert chief['batch'] == other['batch'] == steps
    assert chief['weights_sha1'] == other['weights_sha1']
    return chief


def launch_command(*args):
    """launch_dist.py for two workers and one server, with `args` (ending in -- COMMAND)."""
    return [sys.executable, LAUNCH_DIST, '-n', '2', '-s', '1'] + list(args)


def test_two_workers_and_a_server_on_loopback_end_with_identical_weights(synth_dir, tmp_path):
    prefix = tmp_path / 'model'
    worker = train_command(synth_dir, prefix, '--kvstore', 'dist_sync', '--max-steps', '6',
                           '--lr-epoch-step', '4', '--verbose', '100')
    result = subprocess.run(launch_command('--', *worker), cwd=ROOT, capture_output=True,
                            text=True, timeout=110)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    chief = assert_workers_agree(prefix, 6)

    # The same start without training: the workers' weights did move.
    untrained = tmp_path / 'untrained'
    subprocess.run(train_command(synth_dir, untrained, '--max-steps', '0', '--lr-epoch-step', '4'),
                   cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert end_record('%s-log.jsonl' % untrained)['weights_sha1'] != chief['weights_sha1']


def test_hostfile_mode_starts_remote_roles_through_ssh(synth_dir, tmp_path):
    """A stand-in `ssh` first on PATH logs the host it was asked for and runs the remote
    command line locally: what launch_dist builds for a remote host (cd, PATH, PYTHONPATH, the
    DMLC exports and the quoting) really runs, on two loopback addresses."""
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
    launch = launch_command('-H', str(hosts), '--scheduler-host', '127.0.0.1', '--', *worker)
    env = dict(os.environ, PATH=str(bin_dir) + os.pathsep + os.environ['PATH'])
    result = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=110)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Round robin: server 0 and worker 0 on the first host, worker 1 on the second.
    assert sorted(calls.read_text().split()) == ['127.0.0.1', '127.0.0.1', '127.0.0.2']
    assert_workers_agree(prefix, 4)


# A real OpenSSH server ---------------------------------------------------------------------

def session_processes(sshd):
    """{pid: program name} of the processes started in the fixture's sshd sessions. sshd marks
    their environment, so they are found also once orphaned."""
    found = {}
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/environ' % name, 'rb') as f:
                if sshd.marker not in f.read().split(b'\0'):
                    continue
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                found[int(name)] = os.path.basename(f.read().split(b'\0')[0]).decode()
        except OSError:     # the process ended meanwhile, or is not ours to read
            continue
    return found


def remote_roles(sshd):
    """The Python processes (servers, workers) running in sshd's sessions."""
    return [pid for pid, program in session_processes(sshd).items()
            if program.startswith('python')]


def wait_until(condition, timeout):
    """Poll `condition` until it holds or `timeout` seconds passed; its last value."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.2)
    return condition()


def sshd_config_for(folder, port, marker):
    """A config that lets this user in with the key in `folder`, runnable without root, and
    sets `marker` (NAME=VALUE) in the environment of every session."""
    return '\n'.join([
        'Port %d' % port, 'ListenAddress 127.0.0.1', 'HostKey %s/host_key' % folder,
        'AuthorizedKeysFile %s/authorized_keys' % folder, 'PidFile none', 'UsePAM no',
        'SetEnv %s' % marker,
        # pytest's temporary folders are not laid out as sshd wants a home's ~/.ssh
        'StrictModes no',
        'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password', ''])


def listening(port, proc, timeout=10):
    """Whether `proc` accepts connections on 127.0.0.1:`port` within `timeout` seconds."""
    def accepts():
        with socket.socket() as s:
            return s.connect_ex(('127.0.0.1', port)) == 0
    return wait_until(lambda: proc.poll() is not None or accepts(), timeout) and proc.poll() is None


@pytest.fixture(scope='module')
def sshd(tmp_path_factory):
    """An OpenSSH server on a free 127.0.0.1 port that lets this user in with a throwaway key,
    and the launch_dist.py flags that reach it through a host file without touching ~/.ssh.
    Skips where openssh-server is not installed or sshd does not start."""
    from training.distributed import free_port
    server = shutil.which('sshd') or '/usr/sbin/sshd'
    if not (os.path.exists(server) and shutil.which('ssh') and shutil.which('ssh-keygen')):
        pytest.skip('OpenSSH server not installed (apt-get install openssh-server; .ci/run '
                    'does it)')
    folder = tmp_path_factory.mktemp('sshd')
    for key in ('host_key', 'client_key'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(folder / key)],
                       check=True, capture_output=True)
    shutil.copy(folder / 'client_key.pub', folder / 'authorized_keys')
    port = free_port()
    marker = 'LAUNCH_DIST_TEST_SSHD=%d' % port
    config = folder / 'sshd_config'
    config.write_text(sshd_config_for(folder, port, marker))
    check = subprocess.run([server, '-t', '-f', str(config)], capture_output=True, text=True)
    missing = re.search(r'Missing privilege separation directory: (\S+)', check.stderr)
    if missing and os.geteuid() == 0:
        # Root's sshd drops privileges into this directory, which the distribution's service
        # (not started here) creates at boot.
        os.makedirs(missing.group(1), mode=0o755, exist_ok=True)
        check = subprocess.run([server, '-t', '-f', str(config)], capture_output=True, text=True)
    if check.returncode:
        pytest.skip('sshd refuses the test configuration: %s' % check.stderr.strip())

    known_hosts = folder / 'known_hosts'
    known_hosts.write_text('[127.0.0.1]:%d %s' % (port, (folder / 'host_key.pub').read_text()))
    options = ['Port=%d' % port, 'IdentityFile=%s' % (folder / 'client_key'),
               'IdentitiesOnly=yes', 'UserKnownHostsFile=%s' % known_hosts,
               'StrictHostKeyChecking=yes', 'BatchMode=yes', 'LogLevel=ERROR']
    hosts = folder / 'hosts.txt'
    hosts.write_text('127.0.0.1\n')
    server_info = types.SimpleNamespace(
        marker=marker.encode(), log=folder / 'sshd.log',
        launch_flags=['-H', str(hosts), '--scheduler-host', '127.0.0.1']
        + [a for o in options for a in ('--ssh-option', o)])
    with open(server_info.log, 'w') as log:
        proc = subprocess.Popen([server, '-D', '-e', '-f', str(config)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        if not listening(port, proc):
            pytest.skip('sshd did not start on 127.0.0.1:%d: %s'
                        % (port, server_info.log.read_text().strip()[-500:]))
        login = subprocess.run(['ssh'] + [a for o in options for a in ('-o', o)]
                               + ['127.0.0.1', 'true'], capture_output=True, text=True,
                               timeout=30)
        assert login.returncode == 0, login.stderr + server_info.log.read_text()
        yield server_info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # What a failed test left running: sessions outlive the listener.
        for pid in session_processes(server_info):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def launched(command, **options):
    """launch_dist.py started in a session of its own; whatever of that session is left at the
    end (the local scheduler, ssh clients) is killed, also when the test failed."""
    launcher = subprocess.Popen(command, cwd=ROOT, start_new_session=True, **options)
    try:
        yield launcher
    finally:
        try:
            os.killpg(launcher.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        launcher.communicate()


def test_hostfile_mode_trains_through_a_real_sshd(sshd, synth_dir, tmp_path):
    """The roles start in sshd's login environment, whose PATH does not hold this Python's
    directory: the worker command's bare `python` is found because launch_dist passes PATH on.
    Every remote role ends with its session."""
    prefix = tmp_path / 'model'
    worker = train_command(synth_dir, prefix, '--kvstore', 'dist_sync', '--max-steps', '4',
                           '--lr-epoch-step', '4', '--verbose', '100')
    worker[0] = os.path.basename(sys.executable)    # as users type it, from an active venv
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    with launched(launch_command(*sshd.launch_flags, '--', *worker), env=env, text=True,
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as launcher:
        output = launcher.communicate(timeout=150)[0]
    assert launcher.returncode == 0, output[-3000:] + sshd.log.read_text()[-2000:]
    assert_workers_agree(prefix, 4)
    assert wait_until(lambda: not session_processes(sshd), 10)


def test_remote_roles_stop_when_the_launcher_dies(sshd):
    """sshd does not signal the command of a session without a terminal when the connection
    drops; launch_dist's remote wrapper stops the role when its stdin closes instead."""
    sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']
    with launched(launch_command(*sshd.launch_flags, '--', *sleeper),
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as launcher:
        # two workers and a server
        assert wait_until(lambda: len(remote_roles(sshd)) == 3, 60), sshd.log.read_text()
        launcher.kill()
        assert wait_until(lambda: not remote_roles(sshd), 30)
