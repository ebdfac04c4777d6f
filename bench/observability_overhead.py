"""What metrics and tracing cost per record, in process (no broker).

A partition worker of an unstarted consumer handles the same records for each set-up (the
path a consumed record takes); µs/msg of the fastest run, and the ratio to the plain stack.
Throughput against a broker is the `observability` section of `python -m bench`.
Run: python -m bench.observability_overhead [--n N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider

from bench import spans
from bench.chain_overhead import Countdown, through_worker
from bench.topics import traceparent
from bench.workload import Order, order_bytes
from evkafka import Handler
from evkafka.middleware import Middleware
from evkafka.middleware.metrics import Metrics
from evkafka.middleware.tracing import TracingMiddleware

PAYLOAD = order_bytes(123456)


def headers(i: int, every: int) -> list[tuple[str, bytes]]:
    return [("Event-Type", b"OrderCreated"), ("traceparent", traceparent(i, every))]


def sampled_every(name: str) -> int:
    """Upstream sampling of a set-up's records: 1 in 100 for the `1%` set-ups, none for the
    `0%` ones, else 1 in 10."""
    if "0%" in name and "10%" not in name:
        return 10**12
    return 100 if "1%" in name else 10


#: Providers of the set-up being measured: shut down after its run, so no export thread
#: of one set-up is still working through its queue while the next one is measured.
_providers: list[TracerProvider] = []


def sdk_provider(record_all: bool) -> TracerProvider:
    provider = spans.sdk_provider(record_all)
    _providers.append(provider)
    return provider


def shut_down_providers() -> None:
    """Export what is queued and stop the export threads (part of the measured cost)."""
    while _providers:
        _providers.pop().shutdown()


def setups() -> dict[str, Callable[[], list[Middleware] | None]]:
    """Name -> a factory of the user middleware list (None: the plain default stack)."""

    def tracing(record_all: bool) -> Middleware:
        return Middleware(TracingMiddleware, tracer_provider=sdk_provider(record_all))

    return {
        "plain": lambda: None,
        "metrics": lambda: [Metrics().middleware()],
        "tracing, no SDK": lambda: [Middleware(TracingMiddleware)],
        "tracing, SDK 1%": lambda: [tracing(False)],
        "tracing, SDK 10%": lambda: [tracing(False)],
        "tracing, SDK all": lambda: [tracing(True)],
        "both, no SDK": lambda: [Metrics().middleware(), Middleware(TracingMiddleware)],
        "both, SDK 0%": lambda: [Metrics().middleware(), tracing(False)],
        "both, SDK 1%": lambda: [Metrics().middleware(), tracing(False)],
        "both, SDK 10%": lambda: [Metrics().middleware(), tracing(False)],
        "both, SDK all": lambda: [Metrics().middleware(), tracing(True)],
    }


def worker_run(middleware: list[Middleware] | None, n: int, every: int) -> Callable[[], Any]:
    """A coroutine function handing `n` records to a fresh partition worker, to the last."""
    handler = Handler()
    countdown = Countdown(n)
    hit = countdown.hit

    @handler.event("OrderCreated")
    async def on_order(order: Order) -> None:
        hit()

    records = [
        ConsumerRecord(
            "orders", 0, i, 0, 0, b"k", PAYLOAD, None, 1, len(PAYLOAD), tuple(headers(i, every))
        )
        for i in range(n)
    ]
    return through_worker(handler, middleware, records, countdown)


def in_process(n: int, rounds: int) -> None:
    print(f"in process: {n} records per run, fastest of {rounds}; µs/msg and ratio to plain")
    best = {name: float("inf") for name in setups()}
    for _ in range(rounds):
        for name, make in setups().items():
            loop = asyncio.new_event_loop()
            try:
                run = worker_run(make(), n, sampled_every(name))
                started = time.perf_counter()
                loop.run_until_complete(run())
                shut_down_providers()
                best[name] = min(best[name], time.perf_counter() - started)
            finally:
                loop.close()
    plain = best["plain"] / n * 1e6
    for name, seconds in best.items():
        us = seconds / n * 1e6
        print(f"  {name:18s} {us:6.2f} µs/msg   +{us - plain:5.2f}   x{plain / us:4.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="records per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    in_process(args.n, args.rounds)


if __name__ == "__main__":
    main()
