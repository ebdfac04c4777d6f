"""The `evkafka` command: one function per subcommand, registered in `SUBCOMMANDS`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka.errors import KafkaError

from evkafka import __version__
from evkafka.errors import EVKafkaError
from evkafka.logs import configure_logging

logger = logging.getLogger("evkafka.cli")

#: Read for the SASL password so it never shows in the process list.
SASL_PASSWORD_ENV = "EVKAFKA_SASL_PASSWORD"


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--bootstrap-servers", required=True, help="host:port[,host:port...]")
    group.add_argument("--client-id")
    group.add_argument(
        "--security-protocol", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    )
    group.add_argument("--sasl-mechanism", help="e.g. PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    group.add_argument(
        "--sasl-username", help=f"SASL user; the password is read from ${SASL_PASSWORD_ENV}"
    )


def connection_config(args: argparse.Namespace) -> dict[str, Any]:
    """The BrokerConfig the connection flags describe."""
    config: dict[str, Any] = {"bootstrap_servers": args.bootstrap_servers}
    if args.client_id:
        config["client_id"] = args.client_id
    if args.security_protocol:
        config["security_protocol"] = args.security_protocol
        if "SSL" in args.security_protocol:
            from aiokafka.helpers import create_ssl_context

            config["ssl_context"] = create_ssl_context()
    if args.sasl_mechanism:
        config["sasl_mechanism"] = args.sasl_mechanism
    if args.sasl_username:
        config["sasl_plain_username"] = args.sasl_username
        config["sasl_plain_password"] = os.environ.get(SASL_PASSWORD_ENV, "")
    return config


# -- redrive ----------------------------------------------------------------


def redrive_arguments(parser: argparse.ArgumentParser) -> None:
    _connection_arguments(parser)
    parser.add_argument("--topic", required=True, help="the dead-letter topic to read")
    parser.add_argument("--limit", type=int, help="re-drive at most this many records")
    parser.add_argument("--group-id", default="evkafka-redrive", help="group keeping progress")
    parser.add_argument("--to-topic", help="send every record here, not to its original topic")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka")


def redrive_command(args: argparse.Namespace) -> int:
    """Re-publish a dead-letter topic's records to their original topics."""
    from evkafka.redrive import redrive

    count = asyncio.run(
        redrive(
            connection_config(args),
            args.topic,
            group_id=args.group_id,
            limit=args.limit,
            to_topic=args.to_topic,
            max_wait_s=args.timeout,
        )
    )
    print(f"re-drove {count} record(s) from {args.topic}")
    return 0


# -- asyncapi ------------------------------------------------------------------


def asyncapi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", help="the app to describe, as module:attribute")
    parser.add_argument("--format", choices=["json", "yaml"], default="json")
    parser.add_argument("--html", metavar="PATH", help="write the offline HTML page here instead")


def asyncapi_command_line(args: argparse.Namespace) -> int:
    """Print the app's AsyncAPI document, or write its HTML page."""
    from evkafka.asyncapi.command import asyncapi_command, load_app

    print(asyncapi_command(load_app(args.app), args.format, args.html))
    return 0


# -- demo ----------------------------------------------------------------------


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    """`--bootstrap-servers`, `--duration` and `--rate`."""
    parser.add_argument(
        "--bootstrap-servers", help="run against this cluster instead of an embedded broker"
    )
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--rate", type=float, default=200.0, help="orders produced per second")


def demo_command(args: argparse.Namespace) -> int:
    """Run the quickstart service on an embedded broker and feed it sample orders."""
    from evkafka.demo import demo

    try:
        return demo(args.bootstrap_servers, duration=args.duration, rate=args.rate)
    except RuntimeError as exc:  # the embedded broker could not start
        print(f"evkafka demo: {exc}", file=sys.stderr)
        return 1


# -- run -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", help="the app to run, as module:attribute (e.g. myservice.main:app)")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="run N processes in the app's consumer groups, restarted if they crash (default 1)",
    )
    # Set by the supervisor for each worker process it starts.
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)


def run_command(args: argparse.Namespace) -> int:
    """Run an app until SIGINT/SIGTERM; with `--workers N`, N supervised processes.

    Worker `i` of N serves HTTP (health, docs) on the app's port + i.
    """
    from evkafka.importer import load_app

    if args.supervisor_pid is not None:
        from evkafka.supervisor import exit_with_parent

        exit_with_parent(args.supervisor_pid)
    app = load_app(args.app)  # in the supervisor too: a bad import string fails once, here
    if args.workers > 1:
        return _supervise(args, app.graceful_timeout_ms / 1000)
    if args.worker_index and app.http_port:
        app.http_port += args.worker_index
    return asyncio.run(app.serve())


def _supervise(args: argparse.Namespace, graceful_timeout_s: float) -> int:
    from evkafka.supervisor import Supervisor

    def worker_command(index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "evkafka",
            "--log-level",
            args.log_level,
            "--log-format",
            args.log_format,
            "run",
            args.app,
            "--worker-index",
            str(index),
            "--supervisor-pid",
            str(os.getpid()),
        ]

    # A worker's own shutdown is bounded by its graceful timeout; leave it room to commit.
    supervisor = Supervisor(worker_command, args.workers, stop_timeout_s=graceful_timeout_s + 15)
    return supervisor.run()


# -- the table ----------------------------------------------------------------

Subcommand = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]

#: name -> (help, add its arguments, run it and return the exit code)
SUBCOMMANDS: dict[str, Subcommand] = {
    "run": (
        "run an app (module:app) until SIGINT/SIGTERM, in one or N supervised processes",
        run_arguments,
        run_command,
    ),
    "redrive": (
        "re-publish dead-lettered records to their original topics",
        redrive_arguments,
        redrive_command,
    ),
    "asyncapi": (
        "print the AsyncAPI 3.0 document of an app (or write its HTML page)",
        asyncapi_arguments,
        asyncapi_command_line,
    ),
    "demo": (
        "run the quickstart service on an embedded broker, fed sample events, with live progress",
        demo_arguments,
        demo_command,
    ),
}


def _logging_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Log flags, accepted before and after the subcommand (there without defaults)."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        default="INFO" if defaults else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text" if defaults else argparse.SUPPRESS,
        help="text for people, json (one object per line) for log shippers",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evkafka", description="evkafka operations")
    parser.add_argument("--version", action="version", version=f"evkafka {__version__}")
    _logging_arguments(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        _logging_arguments(sub, defaults=False)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `evkafka` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        code: int = args.run(args)
    except (EVKafkaError, KafkaError, OSError, TimeoutError) as exc:
        logger.debug("evkafka %s failed", args.command, exc_info=exc)
        print(f"evkafka {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
