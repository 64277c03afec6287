"""Start an MXNet parameter-server job: one scheduler, servers and workers.

  python scripts/launch_dist.py -n 2 -s 1 -- python train.py --kvstore dist_sync --dataset synth2d
Without --hostfile everything runs here on 127.0.0.1; with it, servers and workers are spread
over the listed hosts through ssh (same paths on every host) and the scheduler runs here.
See docs/distributed.md.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from console import run_cli  # noqa: E402
from training.distributed import Job, read_hosts  # noqa: E402


def _main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('-n', '--num-workers', type=int, required=True)
    p.add_argument('-s', '--num-servers', type=int, default=1)
    p.add_argument('-H', '--hostfile', help='file with one host per line (default: local)')
    p.add_argument('--scheduler-host', help="this machine's address as the hosts reach it")
    p.add_argument('--port', type=int, help='scheduler port (default: a free one)')
    p.add_argument('--ssh-option', action='append', default=[], metavar='OPTION',
                   help='passed to ssh as -o OPTION, e.g. Port=2222 or IdentityFile=~/.ssh/k '
                        '(repeatable; with --hostfile)')
    p.add_argument('command', nargs=argparse.REMAINDER, help='worker command, after --')
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        raise ValueError('give the worker command after --')
    if args.ssh_option and not args.hostfile:
        raise ValueError('--ssh-option needs --hostfile (without it nothing runs through ssh)')
    hosts = read_hosts(args.hostfile) if args.hostfile else None
    job = Job(command, args.num_workers, args.num_servers, hosts=hosts,
              scheduler_host=args.scheduler_host, port=args.port, ssh_options=args.ssh_option)
    print('scheduler at %s:%d, %d server(s), %d worker(s)'
          % (job.root_uri, job.port, args.num_servers, args.num_workers), flush=True)
    try:
        job.start()
        return job.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        job.stop()


def main(argv=None):
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
