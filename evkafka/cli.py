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

from evkafka.errors import EVKafkaError

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


# -- the table ----------------------------------------------------------------

Subcommand = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]

#: name -> (help, add its arguments, run it and return the exit code)
SUBCOMMANDS: dict[str, Subcommand] = {
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evkafka", description="evkafka operations")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `evkafka` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.run(args)
    except (EVKafkaError, KafkaError, OSError, TimeoutError) as exc:
        print(f"evkafka {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
