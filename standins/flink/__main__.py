"""Command line for the local Flink stand-in.

    python -m standins.flink start [--rest-port P] [--env K=V ...]
        start a JobManager and a TaskManager in the background (or reuse them); print the REST URL
    python -m standins.flink stop [--rest-port P]
        stop the TaskManagers, then the JobManager
    python -m standins.flink status [--rest-port P]
        exit 0 if the JobManager runs, 1 if not; print TaskManagers, slots and running jobs
    python -m standins.flink kill-taskmanager [--id ID] [--rest-port P]
        SIGKILL a TaskManager (default: the oldest); print its id
    python -m standins.flink start-taskmanager [--env K=V ...] [--rest-port P]
        start one more TaskManager into the running cluster; print its id

The REST port defaults to $FLINK_REST_PORT, else 8081; the JobManager's RPC port is one above.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from standins.flink.cluster import FlinkCluster
from standins.flink.errors import FlinkError


def _parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per action, ``--rest-port`` on each."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--rest-port",
        type=int,
        default=None,
        help="REST API port (default: $FLINK_REST_PORT or 8081)",
    )
    with_env = argparse.ArgumentParser(add_help=False)
    with_env.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the JVMs and the Python SDK workers (repeatable)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m standins.flink", description="Local Flink standalone session cluster."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "start", parents=[common, with_env], help="start (or reuse) a JobManager and a TaskManager"
    )
    commands.add_parser("stop", parents=[common], help="stop the TaskManagers and the JobManager")
    commands.add_parser("status", parents=[common], help="say whether the cluster runs")
    kill = commands.add_parser("kill-taskmanager", parents=[common], help="SIGKILL a TaskManager")
    kill.add_argument("--id", default=None, help="its resource id (default: the oldest running)")
    commands.add_parser(
        "start-taskmanager", parents=[common, with_env], help="add a TaskManager to the cluster"
    )
    return parser


def _environment(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FlinkError(f"--env wants KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def _status(cluster: FlinkCluster) -> int:
    """Print the cluster's state; 0 if the JobManager runs, 1 if not."""
    pid = cluster.running_pid()
    if pid is None:
        print(f"not running (REST port {cluster.rest_port})")
        return 1
    print(f"JobManager running, pid {pid}, REST {cluster.rest_url}")
    for resource_id, tm_pid in cluster.taskmanager_pids().items():
        print(f"TaskManager {resource_id} running, pid {tm_pid}")
    try:
        overview = cluster.overview()
        registered = cluster.taskmanager_ids()
        jobs = cluster.running_jobs()
    except FlinkError as error:
        print(f"REST API not answering yet: {error}")
        return 0
    print(f"registered TaskManagers: {', '.join(registered) or 'none'}")
    print(
        f"slots: {overview.get('slots-available', 0)} free of {overview.get('slots-total', 0)}, "
        f"running jobs: {len(jobs)}"
    )
    for job in jobs:
        print(f"  job {job.get('jid')} {job.get('name')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    cluster = FlinkCluster(rest_port=args.rest_port)
    try:
        if args.command == "start":
            print(cluster.start(env=_environment(args.env)).rest_url)
        elif args.command == "stop":
            cluster.stop()
        elif args.command == "status":
            return _status(cluster)
        elif args.command == "kill-taskmanager":
            print(cluster.kill_taskmanager(args.id))
        else:
            print(cluster.start_taskmanager(env=_environment(args.env)))
    except FlinkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
