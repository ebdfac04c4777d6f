"""Sender, EVKafkaProducer and publish middleware against the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest

from evkafka import EVKafkaApp, EVKafkaProducer, Handler, Middleware, Request, Sender
from evkafka.devbroker import DevBroker
from evkafka.errors import DeliveryError
from evkafka.middleware import (
    BodyFieldEventTypeMiddleware,
    CloudEventsBinaryMiddleware,
    CloudEventsStructuredMiddleware,
    EventTypeMiddleware,
    JsonTypedDecoderMiddleware,
)
from evkafka.outgoing import Outgoing
from tests.brokerkit import consumer_config, create_topic, event, produce, read_all, unique

ROOT = Path(__file__).resolve().parents[2]
AT = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)


class Order(pydantic.BaseModel):
    id: int
    placed: datetime.datetime


class Note(msgspec.Struct):
    id: int
    ref: uuid.UUID


@dataclasses.dataclass
class Parcel:
    id: int
    price: decimal.Decimal
    at: datetime.datetime


class Received:
    """Collects (payload, request) per event type and says when `expected` have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.items: dict[str, list[tuple[Any, Request]]] = {}
        self.done = asyncio.Event()

    def add(self, event_type: str, payload: Any, request: Request) -> None:
        self.items.setdefault(event_type, []).append((payload, request))
        if sum(map(len, self.items.values())) >= self.expected:
            self.done.set()

    def one(self, event_type: str) -> tuple[Any, Request]:
        [item] = self.items[event_type]
        return item


async def run_until(app: EVKafkaApp, sending: Any, done: asyncio.Event) -> None:
    await app.start()
    try:
        async with asyncio.timeout(30):
            await sending()
            await done.wait()
    finally:
        await app.stop()


async def test_every_payload_type_and_record_field_round_trips(bootstrap: str) -> None:
    default_topic = await create_topic(bootstrap, partitions=2)
    own_topic = await create_topic(bootstrap, partitions=1)
    sender = Sender()

    @sender.event("Dict")
    async def send_dict(e: dict) -> None: ...

    @sender.event("Str")
    async def send_str(e: str) -> None: ...

    @sender.event("Bytes")
    async def send_bytes(e: bytes) -> None: ...

    @sender.event("Order")
    async def send_order(e: Order) -> None: ...

    @sender.event("Note", topic=own_topic)
    async def send_note(e: Note) -> None: ...

    @sender.event("Parcel")
    async def send_parcel(e: Parcel) -> None: ...

    received = Received(expected=6)
    handler = Handler()

    @handler.event("Dict")
    async def on_dict(p: dict, r: Request) -> None:
        received.add("Dict", p, r)

    @handler.event("Str")
    async def on_str(p: str, r: Request) -> None:
        received.add("Str", p, r)

    @handler.event("Bytes")
    async def on_bytes(p: bytes, r: Request) -> None:
        received.add("Bytes", p, r)

    @handler.event("Order")
    async def on_order(p: Order, r: Request) -> None:
        received.add("Order", p, r)

    @handler.event("Note")
    async def on_note(p: Note, r: Request) -> None:
        received.add("Note", p, r)

    @handler.event("Parcel")
    async def on_parcel(p: Parcel, r: Request) -> None:
        received.add("Parcel", p, r)

    app = EVKafkaApp()
    app.add_consumer(consumer_config(bootstrap, [default_topic, own_topic]), handler)
    app.add_producer({"bootstrap_servers": bootstrap, "topic": default_topic}, sender)
    ts = 1_700_000_000_123

    async def sending() -> None:
        futures = [
            await send_dict(
                {"a": [1, None], "b": "é"},
                key=b"k-bytes",
                headers={"trace": b"t1", "tenant": "acme"},
                partition=1,
                timestamp_ms=ts,
            ),
            await send_str("plain text ✓", key="k-str", partition=0),
            await send_bytes(b"\x00\xffraw", headers=[("dup", b"1"), ("dup", b"2")]),
            await send_note(Note(id=2, ref=uuid.UUID(int=7))),
            await send_parcel(Parcel(id=3, price=decimal.Decimal("19.99"), at=AT)),
        ]
        metadata = await send_order(Order(id=1, placed=AT), wait=True)
        assert metadata.topic == default_topic
        assert all(m.topic in (default_topic, own_topic) for m in await asyncio.gather(*futures))

    await run_until(app, sending, received.done)

    payload, r = received.one("Dict")
    assert payload == {"a": [1, None], "b": "é"}
    assert (r.topic, r.partition, r.key, r.timestamp) == (default_topic, 1, b"k-bytes", ts)
    assert r.headers["trace"] == b"t1" and r.headers["tenant"] == b"acme"
    assert r.headers["Event-Type"] == b"Dict"
    payload, r = received.one("Str")
    assert (payload, r.key, r.partition) == ("plain text ✓", b"k-str", 0)
    payload, r = received.one("Bytes")
    assert payload == b"\x00\xffraw"
    assert [v for k, v in r.message.headers if k == "dup"] == [b"1", b"2"]
    payload, r = received.one("Order")
    assert payload == Order(id=1, placed=AT) and r.topic == default_topic
    payload, r = received.one("Note")
    assert payload == Note(id=2, ref=uuid.UUID(int=7)) and r.topic == own_topic
    payload, r = received.one("Parcel")
    assert payload == Parcel(id=3, price=decimal.Decimal("19.99"), at=AT)


def _header(name: str) -> Any:
    return lambda record: dict(record.headers)[name] == b"Placed"


def _body(field: str) -> Any:
    return lambda record: msgspec.json.decode(record.value)[field] == "Placed"


@pytest.mark.parametrize(
    ("layer", "written"),
    [
        (Middleware(JsonTypedDecoderMiddleware, type_header_name="X-Event"), _header("X-Event")),
        (Middleware(EventTypeMiddleware, header_name="Kind"), _header("Kind")),
        (Middleware(CloudEventsBinaryMiddleware, source="svc"), _header("ce_type")),
        (Middleware(CloudEventsStructuredMiddleware, source="svc"), _body("type")),
        (Middleware(BodyFieldEventTypeMiddleware, field="kind"), _body("kind")),
    ],
    ids=["custom-header", "event-type-header", "ce-binary", "ce-structured", "body-field"],
)
async def test_the_apps_convention_is_written_and_read_back(
    bootstrap: str, layer: Middleware, written: Any
) -> None:
    topic = await create_topic(bootstrap)
    sender = Sender()

    @sender.event("Placed")
    async def send_placed(e: Order) -> None: ...

    received = Received(expected=1)
    app = EVKafkaApp(
        config=consumer_config(bootstrap, topic),  # type: ignore[arg-type]
        middleware=[layer],
    )

    @app.event("Placed")
    async def on_placed(p: Order, r: Request) -> None:
        received.add("Placed", p, r)

    app.add_producer({"bootstrap_servers": bootstrap, "topic": topic}, sender)

    async def sending() -> None:
        await send_placed(Order(id=5, placed=AT), wait=True)

    await run_until(app, sending, received.done)
    payload, _ = received.one("Placed")
    assert payload == Order(id=5, placed=AT)
    [record] = await read_all(bootstrap, topic, 1)
    assert "Event-Type" not in {k for k, _ in record.headers}, "only the app's convention"
    assert written(record)


async def test_publish_middleware_headers_reach_the_consumer(bootstrap: str) -> None:
    class Traceparent:
        def __init__(self, app: Any, trace_id: str) -> None:
            self.app = app
            self.trace_id = trace_id
            self.sizes: list[int] = []

        async def __call__(self, outgoing: Outgoing) -> None:
            outgoing.headers.append(("traceparent", self.trace_id.encode()))
            await self.app(outgoing)
            self.sizes.append(len(outgoing.value or b""))

    topic = await create_topic(bootstrap)
    async with EVKafkaProducer(
        {"bootstrap_servers": bootstrap, "topic": topic},
        middleware=[Middleware(Traceparent, trace_id="00-abc-01")],
    ) as producer:
        await producer.send_event({"x": 1}, "E", key="k")
    [record] = await read_all(bootstrap, topic, 1)
    assert record.headers == (("traceparent", b"00-abc-01"), ("Event-Type", b"E"))
    assert (record.key, record.value) == (b"k", b'{"x":1}')


async def test_value_over_max_request_size_fails_in_both_forms(bootstrap: str) -> None:
    topic = await create_topic(bootstrap)
    sender = Sender()

    @sender.event("Big")
    async def send_big(e: bytes) -> None: ...

    app = EVKafkaApp()
    app.add_producer(
        {"bootstrap_servers": bootstrap, "topic": topic, "max_request_size": 1024}, sender
    )
    await app.start()
    try:
        big = b"x" * 2048
        with pytest.raises(DeliveryError, match=r"'Big'.*MessageSizeTooLargeError"):
            await send_big(big)
        with pytest.raises(DeliveryError, match=r"'Big'.*MessageSizeTooLargeError"):
            await send_big(big, wait=True)
        producer = app.producers["producer-1"].producer
        with pytest.raises(DeliveryError, match="MessageSizeTooLargeError"):
            await producer.send_event(big, "Big")
        with pytest.raises(DeliveryError, match="MessageSizeTooLargeError"):
            await producer.send_event_and_wait(big, "Big")
        await send_big(b"small", wait=True)
    finally:
        await app.stop()
    [record] = await read_all(bootstrap, topic, 1)
    assert record.value == b"small"


class PassThrough:
    """A publish layer that changes nothing: the producer takes its layered path."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, outgoing: Outgoing) -> None:
        await self.app(outgoing)


@pytest.mark.parametrize("layered", [False, True], ids=["direct", "layered"])
async def test_send_event_checks_and_writes_the_same_with_or_without_publish_middleware(
    bootstrap: str, layered: bool
) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    middleware = [Middleware(PassThrough)] if layered else None
    config = {"bootstrap_servers": bootstrap, "topic": topic}
    async with EVKafkaProducer(config, middleware=middleware) as producer:  # type: ignore[arg-type]
        assert producer._direct is not layered
        with pytest.raises(ValueError, match="tombstone"):
            await producer.send_event(None, "Deleted")
        with pytest.raises(TypeError, match=r"cannot encode the payload of event 'E' \(object\)"):
            await producer.send_event(object(), "E")
        with pytest.raises(ValueError, match="partition must be a non-negative int"):
            await producer.send_event({}, "E", partition=-1)
        with pytest.raises(TypeError, match="event_type must be a non-empty str"):
            await producer.send_event({}, "")
        with pytest.raises(DeliveryError, match="has no partition 5"):
            await producer.send_event({}, "E", partition=5)
        await producer.send_event(None, "Deleted", key="k1", partition=0)
        await producer.send_event(
            {"a": 1}, "E", key=b"k2", headers={"h": "v"}, partition=1, timestamp_ms=5
        )
    records = sorted(await read_all(bootstrap, topic, 2), key=lambda r: r.partition)
    fields = [(r.partition, r.key, r.value, list(r.headers)) for r in records]
    assert fields == [
        (0, b"k1", None, [("Event-Type", b"Deleted")]),
        (1, b"k2", b'{"a":1}', [("h", b"v"), ("Event-Type", b"E")]),
    ]
    assert records[1].timestamp == 5


async def test_unknown_partition_is_a_delivery_error(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    async with EVKafkaProducer({"bootstrap_servers": bootstrap, "topic": topic}) as producer:
        with pytest.raises(DeliveryError, match=r"has no partition 5"):
            await producer.send_event({}, "E", partition=5)


def kill(broker: DevBroker) -> None:
    """The broker vanishes at once (a polite stop waits for clients to disconnect)."""
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait(10)


async def test_broker_failure_after_queueing_surfaces_in_both_forms(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "evkafka.producer")
    with DevBroker() as broker:
        config = {
            "bootstrap_servers": broker.bootstrap_servers,
            "topic": "lost",
            "request_timeout_ms": 800,
        }
        producer = EVKafkaProducer(config, name="fragile")  # type: ignore[arg-type]
        await producer.start()
        try:
            await producer.send_event_and_wait({"i": 0}, "E")  # metadata is now known
            kill(broker)
            delivery = await producer.send_event({"i": 1}, "E")
            await producer.send_event({"i": 2}, "E")
            async with asyncio.timeout(10):
                with pytest.raises(DeliveryError, match=r"'fragile': 2 event\(s\)") as info:
                    await producer.flush()
            assert delivery.done() and delivery.exception() is info.value.errors[0]
            assert producer.delivery_failures == 2
            assert "delivery of event 'E' to topic 'lost' failed" in caplog.text
            async with asyncio.timeout(10):
                with pytest.raises(DeliveryError, match="delivery of event 'E' to topic 'lost'"):
                    await producer.send_event_and_wait({"i": 3}, "E")
            assert producer.delivery_failures == 2, "awaited failures are the caller's"
        finally:
            await producer.stop()


async def test_app_shutdown_raises_fire_and_forget_failures_after_lifespan_ends() -> None:
    ended: list[bool] = []

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan() -> Any:
        yield
        ended.append(True)

    sender = Sender()

    @sender.event("E")
    async def send_e(e: dict) -> None: ...

    with DevBroker() as broker:
        app = EVKafkaApp(lifespan=lifespan)
        app.add_producer(
            {
                "bootstrap_servers": broker.bootstrap_servers,
                "topic": "t",
                "request_timeout_ms": 800,
            },
            sender,
        )
        await app.start()
        await send_e({}, wait=True)
        kill(broker)
        await send_e({})
        async with asyncio.timeout(10):
            with pytest.raises(DeliveryError, match="1 event"):
                await app.stop()
    assert ended == [True]
    assert sender.producer is None


# -- SIGTERM while endpoints are producing -------------------------------------


async def test_events_produced_in_endpoints_during_sigterm_all_arrive(
    bootstrap: str, tmp_path: Path
) -> None:
    in_topic = await create_topic(bootstrap)
    out_topic = await create_topic(bootstrap, partitions=2)
    fanout = 20
    await produce(bootstrap, in_topic, [event(b'{"i": %d}' % i) for i in range(100)])
    lines = tmp_path / "out.txt"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.apps.relay",
        cwd=ROOT,
        env={
            **os.environ,
            "BOOTSTRAP": bootstrap,
            "TOPIC": in_topic,
            "OUT_TOPIC": out_topic,
            "GROUP": unique("g"),
            "OUT": str(lines),
            "FANOUT": str(fanout),
            "SLOW_MS": "400",
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    def rows(kind: str) -> list[int]:
        text = lines.read_text() if lines.exists() else ""
        return [int(p[2]) for p in (ln.split() for ln in text.splitlines()) if p[0] == kind]

    async def stderr() -> str:
        assert process.stderr is not None
        return (await process.stderr.read()).decode(errors="replace")[-3000:]

    try:
        async with asyncio.timeout(30):
            # The file is the only signal another process gives; poll it.
            while len(rows("start")) < 2:  # mid-way through the second relay
                assert process.returncode is None, await stderr()
                await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
        assert code == 0, await stderr()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    started, done = rows("start"), rows("done")
    assert started == done, "the endpoint producing during SIGTERM ran to the end"
    records = await read_all(bootstrap, out_topic, len(done) * fanout)
    relayed = sorted((v["i"], v["j"]) for v in (msgspec.json.decode(r.value) for r in records))
    assert relayed == [(i, j) for i in sorted(done) for j in range(fanout)]
