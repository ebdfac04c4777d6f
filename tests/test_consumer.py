"""Partition workers on records handed to them directly (no broker: the fetch side is
covered in tests/integration/test_consumer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from evkafka import ErrorPolicy, Handler
from evkafka.config import consumer_settings
from evkafka.consumer import Consumer, PartitionWorker
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.metrics import Metrics, MetricsMiddleware
from evkafka.stack import build_chain
from evkafka.types import MessageApp

TP = TopicPartition("orders", 0)


def record(offset: int, value: bytes = b'{"n": 1}') -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "orders", 0, offset, 0, 0, None, value, None, 0, len(value), (("Event-Type", b"E"),)
    )


def consumer(
    handler: Handler,
    mode: str = "post-commit",
    policy: ErrorPolicy | None = None,
    wrap: Callable[[MessageApp], MessageApp] | None = None,
    middleware: list[Middleware] | None = None,
) -> Consumer:
    settings = consumer_settings(
        {"topics": ["orders"], "bootstrap_servers": "unused:9092", "auto_commit_mode": mode}  # type: ignore[typeddict-item]
    )

    def chain(c: Consumer) -> MessageApp:
        built = build_chain(handler, middleware, c, mode, policy)  # type: ignore[arg-type]
        return wrap(built) if wrap is not None else built

    return Consumer("c", settings, chain, {})


async def run(c: Consumer, records: list[Any], until: asyncio.Event) -> PartitionWorker:
    worker = c.workers[TP] = PartitionWorker(c, TP)
    worker.feed(records)
    async with asyncio.timeout(5):
        await until.wait()
    return worker


async def test_records_are_handled_in_order_and_marked_done() -> None:
    handler, seen, done = Handler(), [], asyncio.Event()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        seen.append(payload["n"])
        if len(seen) == 600:
            done.set()

    records = [record(i, b'{"n": %d}' % i) for i in range(600)]  # more than one slice
    worker = await run(consumer(handler), records, done)
    assert seen == list(range(600))
    assert worker.tracker.to_commit() == 600


async def test_a_skipped_failure_is_marked_done_and_the_next_record_handled() -> None:
    handler, seen, done = Handler(), [], asyncio.Event()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        seen.append(payload["n"])
        if payload["n"] == 1:
            raise RuntimeError("boom")
        if payload["n"] == 2:
            done.set()

    policy = ErrorPolicy(retries=0, on_failure="skip")
    records = [record(i, b'{"n": %d}' % i) for i in range(3)]
    worker = await run(consumer(handler, policy=policy), records, done)
    assert seen == [0, 1, 2]
    assert worker.tracker.to_commit() == 3


async def test_a_failure_the_policy_stops_on_is_not_marked_and_fails_the_consumer() -> None:
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        if payload["n"] == 1:
            raise RuntimeError("boom")

    c = consumer(handler, policy=ErrorPolicy(retries=0))
    failed = asyncio.Event()
    c._on_failure = lambda _, exc: failed.set()
    worker = await run(c, [record(i, b'{"n": %d}' % i) for i in range(3)], failed)
    assert isinstance(worker.error, RuntimeError)
    assert worker.tracker.to_commit() == 1


async def test_pre_commit_marks_a_record_before_its_endpoint_runs() -> None:
    handler, positions, done = Handler(), [], asyncio.Event()
    c = consumer(handler, mode="pre-commit", policy=ErrorPolicy(retries=0))

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        positions.append(c.workers[TP].tracker.position)
        if payload["n"] == 1:
            done.set()
            raise RuntimeError("boom")

    failed = asyncio.Event()
    c._on_failure = lambda _, exc: failed.set()
    worker = await run(c, [record(i, b'{"n": %d}' % i) for i in range(3)], failed)
    assert positions == [1, 2]
    assert worker.tracker.to_commit() == 2  # the failed record was already marked


async def test_a_chain_not_built_by_build_chain_is_awaited_whole() -> None:
    handler, layers, done = Handler(), [], asyncio.Event()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        done.set()

    class Outer:
        def __init__(self, app: MessageApp) -> None:
            self.app = app

        def __call__(self, message: Message) -> Awaitable[None]:
            layers.append(message.offset)
            return self.app(message)

    worker = await run(consumer(handler, wrap=Outer), [record(7)], done)
    assert layers == [7]
    # The commit layer inside marks the offset through the consumer.
    assert worker.tracker.to_commit() == 8


async def test_a_timed_layer_first_in_the_stack_runs_inline_and_counts_the_same() -> None:
    handler, attempts, done, release = Handler(), [], asyncio.Event(), asyncio.Event()
    held = asyncio.Event()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        attempts.append(payload["n"])
        if payload["n"] == 1 and attempts.count(1) == 1:
            raise RuntimeError("once")
        if payload["n"] == 2:
            held.set()
            await release.wait()
            done.set()

    metrics = Metrics()
    calls: list[int] = []
    layer_call = MetricsMiddleware.__call__

    async def spy(self: MetricsMiddleware, message: Message) -> None:
        calls.append(message.attempt)
        await layer_call(self, message)

    c = consumer(
        handler,
        policy=ErrorPolicy(retries=1, backoff_ms=0, on_failure="skip"),
        middleware=[metrics.middleware()],
    )
    MetricsMiddleware.__call__ = spy  # type: ignore[method-assign]
    try:
        worker = c.workers[TP] = PartitionWorker(c, TP)
        worker.feed([record(i, b'{"n": %d}' % i) for i in range(3)])
        async with asyncio.timeout(5):
            await held.wait()
        assert metrics.in_flight() == {"c": 1}  # the held record, counted by the worker
        release.set()
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        MetricsMiddleware.__call__ = layer_call  # type: ignore[method-assign]
    assert attempts == [0, 1, 1, 2]
    assert calls == [2]  # only the retry goes through the layer's own __call__
    [counts] = metrics.inbound.values()
    assert (counts.received, counts.handled, counts.failed) == (3, 3, {"RuntimeError": 1})
    assert metrics.in_flight() == {"c": 0}
