"""What metrics and tracing cost: the plain stack against the same stack observed.

In process (no broker): µs/msg of the inbound chain for each set-up.
With `--broker`: consume throughput from an embedded broker, set-ups interleaved over
rounds, each on a fresh consumer group; reports medians and the ratio to the plain stack.
Run: python -m bench.observability_overhead [--broker] [--n N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from bench.workload import Order, order_bytes
from evkafka import EVKafkaApp, Handler
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.metrics import Metrics
from evkafka.middleware.tracing import TracingMiddleware
from evkafka.stack import build_chain
from evkafka.testclient import InMemoryCommitter

PAYLOAD = order_bytes(123456)


def traceparent(i: int, every: int = 10) -> bytes:
    """A distinct trace per message; one in `every` sampled upstream (flags 01), as a
    head-sampling producer would send them."""
    return b"00-%032x-%016x-%s" % (i + 1, i + 1, b"01" if i % every == 0 else b"00")


def headers(i: int, every: int = 10) -> list[tuple[str, bytes]]:
    return [("Event-Type", b"OrderCreated"), ("traceparent", traceparent(i, every))]


def sampled_every(name: str) -> int:
    """Upstream sampling of a set-up's records: 1 in 100 for the `1%` set-ups, else 1 in 10."""
    return 100 if "1%" in name else 10


class DropSpans(SpanExporter):
    """An exporter that only counts: the cost measured is evkafka's and the SDK's, not I/O."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


#: Providers of the set-up being measured: shut down after its run, so no export thread
#: of one set-up is still working through its queue while the next one is measured.
_providers: list[TracerProvider] = []


def sdk_provider(record_all: bool) -> TracerProvider:
    """An SDK provider exporting in batches: recording every span, or following the
    upstream sampling decision in the traceparent (ParentBased, the SDK default)."""
    provider = TracerProvider(sampler=ALWAYS_ON if record_all else ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(DropSpans(), max_queue_size=65536))
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
        "both, SDK 1%": lambda: [Metrics().middleware(), tracing(False)],
        "both, SDK 10%": lambda: [Metrics().middleware(), tracing(False)],
        "both, SDK all": lambda: [Metrics().middleware(), tracing(True)],
    }


def handler_for(seen: Callable[[Order], None]) -> Handler:
    handler = Handler()

    @handler.event("OrderCreated")
    async def on_order(order: Order) -> None:
        seen(order)

    return handler


async def chain_us(middleware: list[Middleware] | None, n: int, every: int = 10) -> float:
    chain = build_chain(handler_for(lambda order: None), middleware, InMemoryCommitter())
    state: dict[str, object] = {}
    variants = [tuple(headers(i, every)) for i in range(100)]
    start = time.perf_counter()
    for i in range(n):
        await chain(
            Message(
                "orders", 0, i, b"k", PAYLOAD, variants[i % 100], 0, state=state, consumer_name="c"
            )
        )
    shut_down_providers()
    return (time.perf_counter() - start) / n * 1e6


def in_process(n: int, rounds: int) -> None:
    print(f"in process: {n} messages per run, best of {rounds}; µs/msg and ratio to plain")
    results: dict[str, list[float]] = {name: [] for name in setups()}
    for _ in range(rounds):
        for name, make in setups().items():
            results[name].append(asyncio.run(chain_us(make(), n, sampled_every(name))))
    plain = min(results["plain"])
    for name, runs in results.items():
        best = min(runs)
        print(f"  {name:26s} {best:6.2f} µs/msg   +{best - plain:5.2f}   x{plain / best:4.2f}")


async def consume_rate(
    bootstrap: str, topic: str, n: int, middleware: list[Middleware] | None
) -> tuple[float, float]:
    """(messages/s, CPU µs/msg) from the first handled message to the n-th, on a fresh group.

    CPU time is this process's (all threads): on a shared machine it moves less than
    wall-clock throughput when other work competes for the cores.
    """
    from tests.brokerkit import consumer_config

    handled = 0
    first = cpu_first = 0.0
    done = asyncio.Event()

    def seen(order: Order) -> None:
        nonlocal handled, first, cpu_first
        handled += 1
        if handled == 1:
            first, cpu_first = time.perf_counter(), time.process_time()
        if handled == n:
            done.set()

    app = EVKafkaApp(middleware=middleware)
    app.add_consumer(consumer_config(bootstrap, topic), handler_for(seen), name="bench")  # type: ignore[arg-type]
    await app.start()
    try:
        async with asyncio.timeout(300):
            await done.wait()
        shut_down_providers()
        elapsed, cpu = time.perf_counter() - first, time.process_time() - cpu_first
    finally:
        await app.stop()
        shut_down_providers()
    return (n - 1) / elapsed, cpu / (n - 1) * 1e6


async def with_broker(n: int, rounds: int) -> None:
    from evkafka.devbroker import DevBroker
    from tests.brokerkit import create_topic, produce

    names = ["plain", "metrics", "both, no SDK", "both, SDK 1%", "both, SDK 10%", "both, SDK all"]
    with DevBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topics: dict[int, str] = {}
        for every in sorted({sampled_every(name) for name in names}):
            topics[every] = await create_topic(bootstrap, partitions=4)
            await produce(
                bootstrap,
                topics[every],
                [(PAYLOAD, b"k%d" % i, headers(i, every), i % 4) for i in range(n)],
            )
        print(f"broker: {n} messages, 4 partitions, {rounds} interleaved rounds")
        rates: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        make = setups()
        for r in range(rounds):
            for name in names:
                topic = topics[sampled_every(name)]
                rate, cpu = await consume_rate(bootstrap, topic, n, make[name]())
                rates[name].append(rate)
                cpus[name].append(cpu)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()))
        plain_rate = statistics.median(rates["plain"])
        plain_cpu = statistics.median(cpus["plain"])
        print(
            f"  {'':22s} {'msgs/s':>9s} {'min-max':>15s} {'ratio':>6s} {'CPU µs/msg':>11s} {'ratio':>6s}"
        )
        for name in names:
            rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
            spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
            print(
                f"  {name:22s} {rate:9,.0f} {spread:>15s} {rate / plain_rate:6.2f}"
                f" {cpu:11.1f} {plain_cpu / cpu:6.2f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", action="store_true", help="measure consume throughput too")
    parser.add_argument("--n", type=int, default=None, help="messages per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    in_process(args.n or 100_000, args.rounds)
    if args.broker:
        asyncio.run(with_broker(args.n or 20_000, args.rounds))


if __name__ == "__main__":
    main()
