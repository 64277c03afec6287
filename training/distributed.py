"""Devices, key-value stores and the process layout of MXNet parameter-server training.

A dist_* run has one scheduler, S servers and W workers, all told the scheduler's address and
the counts through DMLC_* environment variables; every worker trains on shard `rank` of W.
"""
import os
import shlex
import socket
import subprocess
import sys
import time

import mxnet as mx

# Servers unpickle the optimizer and schedule classes from here, so they need it on sys.path.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVSTORES = ('device', 'local', 'dist_sync', 'dist_device_sync')
# Seconds a stopped role has between SIGTERM and SIGKILL.
STOP_GRACE = 10


def parse_contexts(gpus):
    """'0,1' -> [gpu(0), gpu(1)]; '' or '-1' -> [cpu()] (the original's -1 for the CPU); None ->
    the GPUs CUDA_VISIBLE_DEVICES names (renumbered from 0, as the process sees them), or the
    CPU when there are none."""
    explicit = gpus is not None
    if gpus is None:
        visible = os.environ.get('CUDA_VISIBLE_DEVICES', '').strip()
        gpus = ','.join(str(i) for i, _ in enumerate(v for v in visible.split(',') if v.strip()))
    try:
        ids = [int(g) for g in gpus.split(',') if g.strip()]
    except ValueError:
        raise ValueError('--gpus must be comma-separated GPU numbers, got %r' % (gpus,))
    if ids == [-1]:
        ids = []
    if any(i < 0 for i in ids):
        raise ValueError('--gpus takes GPU numbers >= 0, or -1 alone for the CPU; got %r'
                         % (gpus,))
    if not ids:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    if max(ids) >= available:
        if not explicit and available == 0:
            return [mx.cpu()]
        raise ValueError('--gpus %s asks for GPU %d but this MXNet build sees %d GPU(s)'
                         % (gpus, max(ids), available))
    return [mx.gpu(i) for i in ids]


def create_kvstore(name):
    """(kvstore for Module.init_optimizer, worker rank, number of workers)."""
    if name not in KVSTORES:
        raise ValueError('unknown kvstore %r; valid: %s' % (name, ', '.join(KVSTORES)))
    if not name.startswith('dist'):
        return name, 0, 1
    if 'DMLC_ROLE' not in os.environ:
        raise ValueError('--kvstore %s needs the DMLC_* environment of a parameter-server job; '
                         'start it with scripts/launch_dist.py' % name)
    kv = mx.kv.create(name)
    return kv, kv.rank, kv.num_workers


def free_port():
    with socket.socket() as s:
        s.bind(('', 0))
        return s.getsockname()[1]


def role_env(role, root_uri, root_port, num_servers, num_workers, node_host):
    return {'DMLC_ROLE': role, 'DMLC_PS_ROOT_URI': root_uri, 'DMLC_PS_ROOT_PORT': str(root_port),
            'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers),
            'DMLC_NODE_HOST': node_host}


def read_hosts(path):
    """One host name or address per line; blank lines and #-comments ignored."""
    try:
        with open(path) as f:
            hosts = [ln.split('#')[0].strip() for ln in f]
    except OSError as err:
        raise ValueError('%s: cannot read host file (%s)' % (path, err.strerror))
    hosts = [h for h in hosts if h]
    if not hosts:
        raise ValueError('%s: host file names no hosts' % path)
    return hosts


def remote_command(workdir, env, argv, grace=STOP_GRACE):
    """The command line ssh runs on a host: `argv` in `workdir` with `env` added, under a
    POSIX sh that stops the role when the session's stdin reaches end-of-file: SIGTERM, then
    SIGKILL after `grace` seconds, as Job.stop does with local roles.

    sshd signals nothing when a session without a terminal drops, so a role would outlive a
    launcher stopped by Ctrl-C, a failed worker or a kill; its stdin, though, closes then."""
    run = 'env %s %s' % (' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items())),
                         ' '.join(shlex.quote(a) for a in argv))
    # fd 3 keeps the session's stdin (a background job's own stdin is /dev/null). Once stdin
    # has closed, the watcher ignores the wrapper's SIGTERM and is waited for, so that it
    # never leaves a `sleep` behind.
    script = ('exec 3<&0 && cd %s && { %s 3<&- & role=$!; '
              '{ read line <&3; trap "" TERM; kill $role; n=0; '
              'while [ $n -lt %d ] && kill -0 $role; do sleep 1; n=$((n+1)); done; '
              'kill -9 $role; } >/dev/null 2>&1 & watch=$!; '
              'wait $role; code=$?; kill $watch 2>/dev/null; wait $watch; exit $code; }'
              % (shlex.quote(workdir), run, grace))
    return 'sh -c %s' % shlex.quote(script)


class Job:
    """Scheduler, servers and workers of one parameter-server run.

    Servers and the scheduler run `python -c "import mxnet"` in `workdir` (importing MXNet with
    DMLC_ROLE=server/scheduler runs that role); workers run `command`. With `hosts`, servers and
    workers are spread round-robin over them through ssh (a shared file system and the same
    paths are assumed; `ssh_options` are passed as `ssh -o OPTION`); otherwise all run here on
    loopback.
    """

    def __init__(self, command, num_workers, num_servers=1, hosts=None, workdir=None,
                 scheduler_host=None, port=None, ssh_options=()):
        if num_workers < 1 or num_servers < 1:
            raise ValueError('need at least one worker and one server')
        self.command = list(command)
        self.num_workers, self.num_servers = num_workers, num_servers
        self.hosts = hosts
        self.workdir = os.path.abspath(workdir or os.getcwd())
        if hosts:
            self.root_uri = scheduler_host or socket.gethostbyname(socket.gethostname())
        else:
            self.root_uri = '127.0.0.1'
        self.port = port or free_port()
        self.ssh_options = list(ssh_options)
        self.procs = []

    def _spawn(self, role, argv, index):
        host = self.hosts[index % len(self.hosts)] if self.hosts else '127.0.0.1'
        env = role_env(role, self.root_uri, self.port, self.num_servers, self.num_workers,
                       self.root_uri if role == 'scheduler' else host)
        env['PYTHONPATH'] = os.pathsep.join(
            [REPO_ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])
        if self.hosts and role != 'scheduler':
            # sshd starts the command with the login's PATH, which rarely holds the virtualenv
            # or conda bin directory this launcher runs from: `python` there is another Python,
            # often without MXNet. The remote roles get this PATH, as local ones do.
            env['PATH'] = os.environ.get('PATH', os.defpath)
            options = self.ssh_options + ['StrictHostKeyChecking=no']
            argv = (['ssh'] + [a for o in options for a in ('-o', o)]
                    + [host, remote_command(self.workdir, env, argv)])
            # The pipe is never written: it closes when this launcher ends, however it ends,
            # and that stops the remote role (see remote_command).
            proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.PIPE)
        else:
            proc = subprocess.Popen(argv, cwd=self.workdir, env=dict(os.environ, **env))
        self.procs.append((role, proc))

    def start(self):
        mxnet_role = [sys.executable, '-c', 'import mxnet']
        self._spawn('scheduler', mxnet_role, 0)
        for i in range(self.num_servers):
            self._spawn('server', mxnet_role, i)
        for i in range(self.num_workers):
            self._spawn('worker', self.command, i)

    def wait(self, grace=30.0):
        """Wait for the workers, give servers and scheduler `grace` seconds to shut down, and
        return the first non-zero worker exit status (0 when all succeeded)."""
        try:
            codes = [p.wait() for role, p in self.procs if role == 'worker']
        except KeyboardInterrupt:
            self.stop()
            raise
        deadline = time.time() + grace
        for role, p in self.procs:
            if role != 'worker':
                try:
                    p.wait(timeout=max(deadline - time.time(), 0.1))
                except subprocess.TimeoutExpired:
                    p.terminate()
        return next((c for c in codes if c), 0)

    def stop(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                p.kill()
