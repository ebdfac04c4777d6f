"""EVKafkaProducer without a broker: config, argument checks, the publish chain, failure bookkeeping."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import uuid
from typing import Any

import msgspec
import pydantic
import pytest

from evkafka import EVKafkaProducer, Middleware
from evkafka.conventions import (
    BodyFieldConvention,
    CloudEventsBinary,
    CloudEventsStructured,
    HeaderConvention,
)
from evkafka.errors import ConfigError, DeliveryError, NotStartedError
from evkafka.middleware.publish import SendLayer, build_publish_chain
from evkafka.outgoing import Outgoing
from evkafka.producer import as_headers, as_key
from evkafka.testclient import RecordingProducer


class Model(pydantic.BaseModel):
    id: int
    at: datetime.datetime


class Struct(msgspec.Struct):
    id: int
    ref: uuid.UUID


@dataclasses.dataclass
class Data:
    id: int
    price: decimal.Decimal


def recorder(sent: list[Outgoing], **options: Any) -> RecordingProducer:
    return RecordingProducer({"topic": "default"}, sent, **options)


# -- config --------------------------------------------------------------


def test_unknown_config_key_names_the_nearest_valid_one() -> None:
    with pytest.raises(ConfigError, match=r"'lingr_ms'.*did you mean 'linger_ms'"):
        EVKafkaProducer({"lingr_ms": 5})  # type: ignore[typeddict-unknown-key]


def test_empty_default_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="topic"):
        EVKafkaProducer({"topic": ""})


async def test_invalid_aiokafka_value_is_a_config_error_at_start() -> None:
    producer = EVKafkaProducer({"acks": "some"})  # type: ignore[typeddict-item]
    with pytest.raises(ConfigError, match="invalid producer config"):
        await producer.start()


async def test_evkafka_only_keys_never_reach_aiokafka() -> None:
    # aiokafka rejects unknown keyword arguments, so start() getting past the
    # constructor to the connection attempt proves topic/cluster_* were removed.
    producer = EVKafkaProducer(
        {
            "bootstrap_servers": "127.0.0.1:1",
            "topic": "t",
            "cluster_name": "c",
            "cluster_description": "d",
            "request_timeout_ms": 1000,
        }
    )
    with pytest.raises(Exception, match="could not connect") as info:
        await producer.start()
    assert type(info.value).__name__ == "ProducerStartupError"
    assert not producer.started


# -- argument checks -------------------------------------------------------


def test_keys_are_bytes_or_utf8_str() -> None:
    assert as_key(None) is None
    assert as_key(b"k") == b"k"
    assert as_key("ключ") == "ключ".encode()
    assert as_key(bytearray(b"x")) == b"x"
    with pytest.raises(TypeError, match="key must be bytes or str, not int"):
        as_key(5)


def test_headers_from_mapping_or_pairs_with_str_values_encoded() -> None:
    assert as_headers(None) == []
    assert as_headers({"a": b"1", "b": "2"}) == [("a", b"1"), ("b", b"2")]
    assert as_headers([("a", b"1"), ("a", b"2")]) == [("a", b"1"), ("a", b"2")]
    with pytest.raises(TypeError, match="header 'a' must have a bytes or str value, not int"):
        as_headers({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="header name must be str"):
        as_headers([(b"a", b"1")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="mapping or"):
        as_headers([b"ab c"])  # type: ignore[list-item]


async def test_sending_before_start_is_a_clear_error() -> None:
    producer = EVKafkaProducer({"topic": "t"})
    with pytest.raises(NotStartedError, match="not started"):
        await producer.send_event({}, "E")
    with pytest.raises(NotStartedError, match="not started"):
        await producer.send_event_and_wait({}, "E")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"partition": -1}, ValueError, "partition must be a non-negative int"),
        ({"partition": "1"}, ValueError, "partition must be a non-negative int"),
        ({"timestamp_ms": 1.5}, ValueError, "timestamp_ms must be a non-negative int"),
        ({"event_type": ""}, TypeError, "event_type must be a non-empty str"),
        ({"key": 1}, TypeError, "key must be bytes or str"),
    ],
)
async def test_bad_arguments_are_rejected_before_sending(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    sent: list[Outgoing] = []
    async with recorder(sent) as producer:
        args = {"event": {}, "event_type": "E", **kwargs}
        with pytest.raises(error, match=match):
            await producer.send_event(**args)
    assert sent == []


async def test_no_topic_anywhere_is_a_config_error() -> None:
    async with RecordingProducer({}, []) as producer:
        with pytest.raises(ConfigError, match="no topic for event 'E'"):
            await producer.send_event({}, "E")


async def test_tombstone_needs_a_key() -> None:
    sent: list[Outgoing] = []
    async with recorder(sent) as producer:
        with pytest.raises(ValueError, match="tombstone"):
            await producer.send_event(None, "Deleted")
        await producer.send_event(None, "Deleted", key="k")
    assert sent[0].value is None and sent[0].key == b"k"


async def test_unencodable_payload_names_the_event_and_type() -> None:
    async with recorder([]) as producer:
        with pytest.raises(TypeError, match=r"cannot encode the payload of event 'E' \(object\)"):
            await producer.send_event(object(), "E")


# -- encoding and conventions ------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "wire"),
    [
        ({"a": 1}, b'{"a":1}'),
        ("text é", "text é".encode()),
        (b"\x00raw", b"\x00raw"),
        (
            Model(id=1, at=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)),
            b'{"id":1,"at":"2024-01-02T03:04:05Z"}',
        ),
        (
            Struct(id=2, ref=uuid.UUID(int=1)),
            b'{"id":2,"ref":"00000000-0000-0000-0000-000000000001"}',
        ),
        (Data(id=3, price=decimal.Decimal("1.25")), b'{"id":3,"price":1.25}'),
    ],
)
async def test_every_payload_type_is_encoded_by_the_shared_codec(payload: Any, wire: bytes) -> None:
    sent: list[Outgoing] = []
    async with recorder(sent) as producer:
        metadata = await producer.send_event_and_wait(payload, "E", key=b"k")
    assert sent[0].value == wire
    assert sent[0].headers == [("Event-Type", b"E")]
    assert (metadata.topic, metadata.partition, metadata.offset) == ("default", 0, 0)


async def test_caller_headers_come_first_then_the_convention() -> None:
    sent: list[Outgoing] = []
    async with recorder(sent, convention=HeaderConvention("X-Type")) as producer:
        await producer.send_event({}, "E", headers={"trace": "t1"})
    assert sent[0].headers == [("trace", b"t1"), ("X-Type", b"E")]


async def test_cloudevents_binary_keeps_headers_a_middleware_already_set() -> None:
    sent: list[Outgoing] = []
    async with recorder(sent, convention=CloudEventsBinary(source="svc")) as producer:
        await producer.send_event({"a": 1}, "E", headers={"ce_id": "fixed"})
    headers = dict(sent[0].headers)
    assert headers["ce_id"] == b"fixed"
    assert headers["ce_type"] == b"E"
    assert headers["ce_source"] == b"svc"
    assert sent[0].value == b'{"a":1}'


async def test_structured_and_body_field_conventions_rewrite_the_value() -> None:
    sent: list[Outgoing] = []
    async with recorder(sent, convention=CloudEventsStructured()) as producer:
        await producer.send_event({"a": 1}, "E")
    envelope = msgspec.json.decode(sent[0].value or b"")
    assert envelope["type"] == "E" and envelope["data"] == {"a": 1}
    async with recorder(sent, convention=BodyFieldConvention("kind")) as producer:
        await producer.send_event({"a": 1}, "E")
        with pytest.raises(ValueError, match="needs a JSON object payload"):
            await producer.send_event([1], "E")
    assert msgspec.json.decode(sent[1].value or b"") == {"a": 1, "kind": "E"}


# -- publish middleware ------------------------------------------------------


class Trace:
    """Sees the payload and adds a header before; sees the wire value after."""

    def __init__(self, app: Any, header: str, seen: list[tuple[str, Any]]) -> None:
        self.app = app
        self.header = header
        self.seen = seen

    async def __call__(self, outgoing: Outgoing) -> None:
        self.seen.append((f"{self.header} before", (outgoing.payload, outgoing.value)))
        outgoing.headers.append((self.header, b"1"))
        await self.app(outgoing)
        self.seen.append((f"{self.header} after", (outgoing.value, outgoing.delivery is not None)))


class Drop:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, outgoing: Outgoing) -> None:
        if outgoing.event_type != "Secret":
            await self.app(outgoing)


class PreEncode:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, outgoing: Outgoing) -> None:
        outgoing.value = b"custom:" + str(outgoing.payload).encode()
        await self.app(outgoing)


async def test_middleware_runs_first_declared_outermost_around_encoding() -> None:
    sent: list[Outgoing] = []
    seen: list[tuple[str, Any]] = []
    middleware = [Middleware(Trace, header="outer", seen=seen), Middleware(Trace, "inner", seen)]
    async with recorder(sent, middleware=middleware) as producer:
        await producer.send_event({"a": 1}, "E")
    assert seen == [
        ("outer before", ({"a": 1}, None)),
        ("inner before", ({"a": 1}, None)),
        ("inner after", (b'{"a":1}', True)),
        ("outer after", (b'{"a":1}', True)),
    ]
    assert sent[0].headers == [("outer", b"1"), ("inner", b"1"), ("Event-Type", b"E")]


async def test_chain_is_built_once_per_producer() -> None:
    built: list[int] = []

    class Counted:
        def __init__(self, app: Any) -> None:
            built.append(1)
            self.app = app

        async def __call__(self, outgoing: Outgoing) -> None:
            await self.app(outgoing)

    async with recorder([], middleware=[Middleware(Counted)]) as producer:
        for _ in range(5):
            await producer.send_event({}, "E")
    assert built == [1]


async def test_a_middleware_can_drop_or_pre_encode_an_event() -> None:
    sent: list[Outgoing] = []
    async with recorder(sent, middleware=[Middleware(Drop), Middleware(PreEncode)]) as producer:
        dropped = await producer.send_event({}, "Secret")
        assert dropped.done() and dropped.result() is None
        assert await producer.send_event_and_wait({}, "Secret") is None
        await producer.send_event(7, "Public")
    assert [(o.event_type, o.value) for o in sent] == [("Public", b"custom:7")]


async def test_send_layer_hands_the_encoded_event_to_the_transport() -> None:
    handed: list[Outgoing] = []

    async def transmit(outgoing: Outgoing) -> asyncio.Future[Any]:
        handed.append(outgoing)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result("meta")
        return future

    chain = build_publish_chain(None, SendLayer(transmit, _json(), HeaderConvention()))
    outgoing = Outgoing("t", "E", {"x": 1})
    await chain(outgoing)
    assert handed == [outgoing] and outgoing.value == b'{"x":1}'
    assert outgoing.delivery is not None and outgoing.delivery.result() == "meta"


def _json() -> Any:
    from evkafka.codec import JSON

    return JSON


# -- fire-and-forget failures --------------------------------------------------


class FailingRecorder(RecordingProducer):
    """Accepts events, then fails the delivery of those whose event type is 'Bad'."""

    async def _record(self, outgoing: Outgoing) -> asyncio.Future[Any]:
        future = await super()._record(outgoing)
        if outgoing.event_type == "Bad":
            future = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(future.set_exception, OSError("broker said no"))
        return future


async def test_fire_and_forget_failures_are_counted_logged_and_raised_by_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = FailingRecorder({"topic": "t"}, [], name="p1")
    await producer.start()
    await producer.send_event({}, "Good")
    await producer.send_event({}, "Bad")
    await producer.send_event({}, "Bad")
    with pytest.raises(DeliveryError, match=r"'p1': 2 event\(s\) sent without waiting") as info:
        await producer.flush()
    assert producer.delivery_failures == 2
    assert [type(e) for e in info.value.errors] == [OSError, OSError]
    assert "delivery of event 'Bad' to topic 't' failed: OSError: broker said no" in caplog.text
    await producer.flush()  # reported once, then cleared
    await producer.stop()


async def test_awaited_form_raises_delivery_error_and_is_not_reported_again() -> None:
    producer = FailingRecorder({"topic": "t"}, [])
    await producer.start()
    with pytest.raises(DeliveryError, match="delivery of event 'Bad' to topic 't' failed"):
        await producer.send_event_and_wait({}, "Bad")
    await producer.stop()


async def test_stop_raises_unreported_failures_but_not_over_a_body_exception() -> None:
    producer = FailingRecorder({"topic": "t"}, [])
    with pytest.raises(DeliveryError):
        async with producer:
            await producer.send_event({}, "Bad")

    with pytest.raises(LookupError):
        async with producer:
            await producer.send_event({}, "Bad")
            raise LookupError("body")


class ManualRecorder(RecordingProducer):
    """Hands out delivery futures the test resolves itself, in any order."""

    def __init__(self) -> None:
        super().__init__({"topic": "t"}, [])
        self.deliveries: list[asyncio.Future[Any]] = []

    async def _record(self, outgoing: Outgoing) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


async def test_failures_are_counted_as_soon_as_earlier_deliveries_finish() -> None:
    producer = ManualRecorder()
    await producer.start()
    first = await producer.send_event({}, "A")
    second = await producer.send_event({}, "B")
    second.set_exception(OSError("lost"))
    await asyncio.wait([second])
    assert producer.delivery_failures == 0, "checked in send order: 'A' is still pending"
    first.set_result("ok")
    await asyncio.wait([first])
    assert producer.delivery_failures == 1
    third = await producer.send_event({}, "C")
    third.set_exception(OSError("lost too"))
    await asyncio.wait([third])
    assert producer.delivery_failures == 2
    with pytest.raises(DeliveryError, match=r"2 event\(s\).*lost") as info:
        await producer.flush()
    assert [str(e) for e in info.value.errors] == ["lost", "lost too"]


async def test_flush_waits_for_deliveries_still_in_flight() -> None:
    producer = ManualRecorder()
    await producer.start()
    delivery = await producer.send_event({}, "A")
    flushing = asyncio.ensure_future(producer.flush())
    await asyncio.sleep(0)
    assert not flushing.done()
    delivery.set_exception(OSError("late"))
    async with asyncio.timeout(5):
        with pytest.raises(DeliveryError, match="late"):
            await flushing
