"""Command line of the stand-ins.

    python -m standins services start [--customers N] [--central-port P] [--scorer-port P]
                                      [--scorer-latency-ms MS] [--scorer-max-concurrency N]
    python -m standins services stop

``start`` leaves the central and the scorer running in the background (pids in ``.local/run/``);
``stop`` terminates them. Port/latency/concurrency defaults come from the servers' environment
variables (CENTRAL_PORT, SCORER_PORT, SCORER_LATENCY_MS, SCORER_MAX_CONCURRENCY).
Kafka has its own command line: ``python -m standins.kafka``.
"""

from __future__ import annotations

import argparse
import sys

from standins.central import server as central_server
from standins.central.generate import DEFAULT_CUSTOMERS
from standins.http import env_int
from standins.scorer import server as scorer_server
from standins.services import LocalServices, start_detached, stop_detached


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m standins", description="Local stand-ins for the outside world."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    services = commands.add_parser("services", help="the central and the scorer").add_subparsers(
        required=True, metavar="ACTION"
    )
    start = services.add_parser("start", help="start both in the background")
    start.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    start.add_argument(
        "--central-port", type=int, default=env_int("CENTRAL_PORT", central_server.DEFAULT_PORT)
    )
    start.add_argument(
        "--scorer-port", type=int, default=env_int("SCORER_PORT", scorer_server.DEFAULT_PORT)
    )
    start.add_argument("--scorer-latency-ms", type=int, default=env_int("SCORER_LATENCY_MS", 0))
    start.add_argument(
        "--scorer-max-concurrency",
        type=int,
        default=env_int("SCORER_MAX_CONCURRENCY", 0),
        help="0 = unlimited",
    )
    start.set_defaults(run=_start_services)
    services.add_parser("stop", help="stop both").set_defaults(run=_stop_services)
    return parser


def _start_services(args: argparse.Namespace) -> None:
    services = LocalServices(
        central_port=args.central_port,
        scorer_port=args.scorer_port,
        customers=args.customers,
        scorer_latency_ms=args.scorer_latency_ms,
        scorer_max_concurrency=args.scorer_max_concurrency,
    )
    start_detached(services)
    print(
        f"central: {services.central_url}\nscorer:  {services.scorer_url}\nlogs:    {services.logs_dir}"
    )


def _stop_services(_args: argparse.Namespace) -> None:
    stopped = stop_detached()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


if __name__ == "__main__":
    sys.exit(main())
