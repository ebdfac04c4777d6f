"""Error policy against the real broker: dead letters, retries, stop, skip, re-drive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from aiokafka import AIOKafkaConsumer

from evkafka import ErrorPolicy, EVKafkaApp, Handler, Middleware, Request
from evkafka.cli import main as cli_main
from evkafka.message import Message
from evkafka.middleware.errors import ErrorEvent
from evkafka.redrive import redrive
from evkafka.types import MessageApp
from tests.brokerkit import (
    committed,
    consumer_config,
    create_topic,
    event,
    produce,
    read_all,
    unique,
)

FAST = {"backoff_ms": 10, "backoff_max_ms": 20}


class Order(pydantic.BaseModel):
    id: int


class EventLog:
    """A user middleware that hears the error policy's decisions (as metrics would)."""

    def __init__(
        self,
        app: MessageApp,
        events: list[ErrorEvent],
        until: Callable[[list[ErrorEvent]], bool] | None = None,
        reached: asyncio.Event | None = None,
    ) -> None:
        self.app = app
        self.events = events
        self.until = until
        self.reached = reached

    async def __call__(self, message: Message) -> None:
        await self.app(message)

    def on_error_event(self, event: ErrorEvent) -> None:
        self.events.append(event)
        if self.until is not None and self.reached is not None and self.until(self.events):
            self.reached.set()


async def run_until(app: EVKafkaApp, done: asyncio.Event, limit_s: float = 30.0) -> None:
    await app.start()
    try:
        async with asyncio.timeout(limit_s):
            await done.wait()
    finally:
        await app.stop()


async def serve(app: EVKafkaApp, limit_s: float = 30.0) -> int:
    async with asyncio.timeout(limit_s):
        return await app.serve()


async def topic_exists(bootstrap: str, topic: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()


def dlt_headers(record: Any) -> dict[str, bytes]:
    return {k: v for k, v in record.headers if k.startswith("evkafka-dlt-")}


async def test_undecodable_records_are_dead_lettered_and_the_rest_flow(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    records = [
        event(b'{"id": 1}', "Order", key=b"k0"),
        event(b"{not json", "Json", key=b"k1"),  # invalid JSON
        event(b'{"id": "x"}', "Order", key=b"k2"),  # wrong schema
        event(b"\xff\xfe", "Text", key=b"k3"),  # not UTF-8 for a str endpoint
        event(None, "Json", key=b"k4"),  # tombstone for a non-Optional endpoint
        (b"{}", b"k5", [("trace", b"t5")], 0),  # no event type at all
        event(b'{"id": 2}', "Order", key=b"k6"),
    ]
    await produce(bootstrap, topic, records)
    handled: list[int] = []
    done = asyncio.Event()
    handler = Handler()

    @handler.event("Order")
    async def on_order(order: Order) -> None:
        handled.append(order.id)
        if order.id == 2:
            done.set()

    @handler.event("Json")
    async def on_json(payload: dict) -> None:
        raise AssertionError("must not be called")

    @handler.event("Text")
    async def on_text(text: str) -> None:
        raise AssertionError("must not be called")

    config = consumer_config(bootstrap, topic)
    app = EVKafkaApp(error_policy=ErrorPolicy(on_failure="dead-letter"))
    app.add_consumer(config, handler, name="orders")
    await run_until(app, done)

    assert handled == [1, 2]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 7}
    source = await read_all(bootstrap, topic, 7)
    dead = sorted(await read_all(bootstrap, f"{topic}.DLT", 5), key=lambda r: r.key)
    expected_errors = {
        b"k1": b"evkafka.errors.PayloadDecodeError",
        b"k2": b"evkafka.errors.PayloadDecodeError",
        b"k3": b"evkafka.errors.PayloadDecodeError",
        b"k4": b"evkafka.errors.TombstoneError",
        b"k5": b"evkafka.errors.MissingEventTypeError",
    }
    assert [r.key for r in dead] == list(expected_errors)
    for record in dead:
        original = next(r for r in source if r.key == record.key)
        assert record.value == original.value
        assert [h for h in record.headers if not h[0].startswith("evkafka-dlt-")] == list(
            original.headers
        )
        headers = dlt_headers(record)
        assert headers["evkafka-dlt-error-type"] == expected_errors[record.key]
        assert f"{topic}[0]@{original.offset}".encode() in headers["evkafka-dlt-error-message"]
        assert headers["evkafka-dlt-original-topic"] == topic.encode()
        assert headers["evkafka-dlt-original-partition"] == b"0"
        assert headers["evkafka-dlt-original-offset"] == str(original.offset).encode()
        assert headers["evkafka-dlt-original-timestamp"] == str(original.timestamp).encode()
        assert headers["evkafka-dlt-consumer-group"] == config["group_id"].encode()
        assert headers["evkafka-dlt-consumer"] == b"orders"
        assert headers["evkafka-dlt-attempts"] == b"1"  # never retried
        assert int(headers["evkafka-dlt-time"]) >= original.timestamp


async def test_fails_twice_then_succeeds_once_with_three_attempts(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, topic, [event(b'{"n": 1}')])
    attempts: list[int] = []
    handled: list[dict[str, int]] = []
    events: list[ErrorEvent] = []
    done = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict, request: Request) -> None:
        attempts.append(request.message.attempt)
        if len(attempts) < 3:
            raise ConnectionError("downstream flaky")
        handled.append(payload)
        done.set()

    config = consumer_config(bootstrap, topic)
    app = EVKafkaApp(
        middleware=[Middleware(EventLog, events=events)],
        error_policy=ErrorPolicy(on_failure="dead-letter", **FAST),
    )
    app.add_consumer(config, handler)
    await run_until(app, done)

    assert handled == [{"n": 1}] and attempts == [1, 2, 3]
    assert [(e.action, e.attempt) for e in events] == [("retry", 1), ("retry", 2)]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 1}
    assert not await topic_exists(bootstrap, f"{topic}.DLT")


async def test_stop_leaves_the_offset_exits_nonzero_and_retries_after_restart(
    bootstrap: str,
) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(3)])
    config = consumer_config(bootstrap, topic)
    broken = True
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def build() -> EVKafkaApp:
        app = EVKafkaApp()  # the default policy: a few retries, then stop
        handler = Handler()

        @handler.event("E")
        async def on_e(payload: dict, request: Request) -> None:
            seen.append((payload["i"], request.message.attempt))
            if payload["i"] == 1 and broken:
                raise RuntimeError("bug, fixed in the next release")
            if payload["i"] == 2:
                done.set()

        app.add_consumer(config, handler)
        return app

    assert await serve(build()) == 1
    assert seen == [(0, 1), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 1}

    broken = False
    seen.clear()
    await run_until(build(), done)
    assert seen == [(1, 1), (2, 1)]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 3}


async def test_skip_commits_logs_and_counts(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evkafka.errors")
    topic = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, topic, [event(b'{"ok": false}'), event(b'{"ok": true}')])
    events: list[ErrorEvent] = []
    done = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        if not payload["ok"]:
            raise ValueError("rejected by the business rule")
        done.set()

    config = consumer_config(bootstrap, topic)
    app = EVKafkaApp(
        middleware=[Middleware(EventLog, events=events)],
        error_policy=ErrorPolicy(retries=1, on_failure="skip", **FAST),
    )
    app.add_consumer(config, handler)
    await run_until(app, done)

    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 2}
    assert [(e.action, e.attempt, type(e.error)) for e in events] == [
        ("retry", 1, ValueError),
        ("skip", 2, ValueError),
    ]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert f"{topic}[0]@0" in skipped[0].getMessage()
    assert "rejected by the business rule" in skipped[0].getMessage()


async def test_retrying_one_partition_does_not_stall_the_others(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    await produce(
        bootstrap,
        topic,
        [event(b'{"i": 0}', partition=0)]
        + [event(b'{"i": %d}' % i, partition=1) for i in range(20)],
    )
    first_failure = asyncio.Event()
    others_done = asyncio.Event()
    stuck_done = asyncio.Event()
    attempts: list[int] = []
    flowed: list[int] = []
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict, request: Request) -> None:
        if request.partition == 0:
            attempts.append(request.message.attempt)
            if not others_done.is_set():
                first_failure.set()
                raise TimeoutError("downstream still down")
            stuck_done.set()
            return
        # partition 1 starts only once partition 0 is in its retry loop
        async with asyncio.timeout(20):
            await first_failure.wait()
        flowed.append(payload["i"])
        if len(flowed) == 20:
            others_done.set()

    config = consumer_config(bootstrap, topic)
    policy = ErrorPolicy(retries=500, backoff_ms=20, backoff_max_ms=20, jitter=0)
    app = EVKafkaApp(error_policy=policy)
    app.add_consumer(config, handler)
    await run_until(app, stuck_done)

    assert flowed == list(range(20))
    assert len(attempts) > 1 and attempts == list(range(1, len(attempts) + 1))
    assert await committed(bootstrap, config["group_id"], topic, 2) == {0: 1, 1: 20}


async def test_unwritable_dead_letter_falls_back_to_stop_and_loses_nothing(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    big = b"{" + b"x" * 4000  # invalid JSON, larger than the dead-letter producer allows
    await produce(bootstrap, topic, [event(b"{}"), event(big, key=b"big"), event(b"{}")])
    config = consumer_config(bootstrap, topic)
    handled: list[int] = []
    done = asyncio.Event()

    def build(policy: ErrorPolicy) -> EVKafkaApp:
        handler = Handler()

        @handler.event("E")
        async def on_e(payload: dict, request: Request) -> None:
            handled.append(request.offset)
            if request.offset == 2:
                done.set()

        app = EVKafkaApp(error_policy=policy)
        app.add_consumer(config, handler)
        return app

    tiny = ErrorPolicy(on_failure="dead-letter", dead_letter_producer={"max_request_size": 1024})
    assert await serve(build(tiny)) == 1
    assert handled == [0]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 1}
    assert "dead-letter write" in caplog.text and "MessageSizeTooLargeError" in caplog.text

    await run_until(build(ErrorPolicy(on_failure="dead-letter")), done)
    assert handled == [0, 2]
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 3}
    [dead] = await read_all(bootstrap, f"{topic}.DLT", 1)
    assert (dead.key, dead.value) == (b"big", big)


async def test_unreachable_dead_letter_cluster_fails_the_start(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None: ...

    elsewhere = ErrorPolicy(
        on_failure="dead-letter", dead_letter_producer={"bootstrap_servers": "127.0.0.1:1"}
    )
    app = EVKafkaApp(error_policy=elsewhere)
    app.add_consumer(consumer_config(bootstrap, topic), handler)
    assert await serve(app) == 1
    assert "dead-letter producer could not connect to '127.0.0.1:1'" in caplog.text


async def test_redrive_puts_dead_letters_back_and_they_are_handled(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    originals = [
        event(b'{"i": %d}' % i, key=b"k%d" % i, headers=[("trace", b"t%d" % i)]) for i in range(3)
    ]
    await produce(bootstrap, topic, originals)
    config = consumer_config(bootstrap, topic)
    broken = True
    handled: list[tuple[int, bytes | None, dict[str, bytes]]] = []
    handled_all = asyncio.Event()
    dead_lettered = asyncio.Event()

    def build() -> EVKafkaApp:
        handler = Handler()
        # only this endpoint dead-letters; the consumer keeps the default (stop)
        policy = ErrorPolicy(retries=0, on_failure="dead-letter")

        @handler.event("E", error_policy=policy)
        async def on_e(payload: dict, request: Request) -> None:
            if broken:
                raise RuntimeError("bug")
            handled.append((payload["i"], request.key, request.headers))
            if len(handled) == 3:
                handled_all.set()

        def three(events: list[ErrorEvent]) -> bool:
            return sum(e.action == "dead-letter" for e in events) == 3

        app = EVKafkaApp(
            middleware=[Middleware(EventLog, events=[], until=three, reached=dead_lettered)]
        )
        app.add_consumer(config, handler)
        return app

    await run_until(build(), dead_lettered)
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 3}

    group = unique("redrive")
    assert await redrive({"bootstrap_servers": bootstrap}, f"{topic}.DLT", group_id=group) == 3
    assert await redrive({"bootstrap_servers": bootstrap}, f"{topic}.DLT", group_id=group) == 0
    back = (await read_all(bootstrap, topic, 6))[3:]
    assert [(r.key, r.value, list(r.headers)) for r in back] == [
        (key, value, headers) for value, key, headers, _ in originals
    ]

    broken = False
    await run_until(build(), handled_all)
    assert [(i, key, h["trace"]) for i, key, h in handled] == [
        (i, b"k%d" % i, b"t%d" % i) for i in range(3)
    ]
    assert all(not k.startswith("evkafka-dlt-") for _, _, h in handled for k in h)
    assert await committed(bootstrap, config["group_id"], topic, 1) == {0: 6}


async def test_redrive_cli_with_limit_and_a_record_without_origin(
    bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = await create_topic(bootstrap, partitions=1)
    dlt = await create_topic(bootstrap, partitions=1, prefix="dlt")
    origin = [("evkafka-dlt-original-topic", target.encode()), ("evkafka-dlt-attempts", b"4")]
    await produce(
        bootstrap,
        dlt,
        [
            (b"v0", b"k0", [("Event-Type", b"E"), *origin], 0),
            (b"v1", b"k1", [("Event-Type", b"E"), *origin], 0),
            (b"v2", b"k2", [("Event-Type", b"E")], 0),  # not written by evkafka
        ],
    )
    group = unique("redrive")
    argv = ["redrive", "--bootstrap-servers", bootstrap, "--topic", dlt, "--group-id", group]

    assert await asyncio.to_thread(cli_main, [*argv, "--limit", "1"]) == 0
    assert "re-drove 1 record(s)" in capsys.readouterr().out
    assert await asyncio.to_thread(cli_main, argv) == 1
    err = capsys.readouterr().err
    assert f"{dlt}[0]@2 has no 'evkafka-dlt-original-topic' header" in err
    assert "(1 re-driven before it)" in err

    back = await read_all(bootstrap, target, 2)
    assert [(r.key, r.value, list(r.headers)) for r in back] == [
        (b"k0", b"v0", [("Event-Type", b"E")]),
        (b"k1", b"v1", [("Event-Type", b"E")]),
    ]
    assert await committed(bootstrap, group, dlt, 1) == {0: 2}

    missing = ["redrive", "--bootstrap-servers", bootstrap, "--topic", f"{dlt}.nope"]
    assert await asyncio.to_thread(cli_main, missing) == 1
    assert f"dead-letter topic '{dlt}.nope' does not exist" in capsys.readouterr().err
