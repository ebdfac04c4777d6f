"""Sender endpoints: registration, introspection, topics, binding, and TestClient recording."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pydantic
import pytest

from evkafka import EVKafkaApp, Handler, Middleware, Sender, TestClient
from evkafka.conventions import CloudEventsBinary, HeaderConvention
from evkafka.errors import ConfigError, NotStartedError, RegistrationError
from evkafka.middleware import CloudEventsBinaryMiddleware, JsonTypedDecoderMiddleware
from evkafka.outgoing import Outgoing
from evkafka.testclient import RecordingProducer


class Order(pydantic.BaseModel):
    id: int


def test_endpoint_keeps_name_signature_and_metadata() -> None:
    sender = Sender()

    @sender.event("OrderPlaced", topic="orders", summary="An order", tags=["shop"])
    async def send_order(order: Order) -> None:
        """Published when a customer checks out."""

    assert send_order.__name__ == "send_order"  # type: ignore[attr-defined]
    assert str(inspect.signature(send_order)) == "(order: 'Order') -> 'None'"
    endpoint = sender.endpoints["OrderPlaced"]
    assert (endpoint.event_type, endpoint.topic, endpoint.payload_type) == (
        "OrderPlaced",
        "orders",
        Order,
    )
    assert endpoint.summary == "An order"
    assert endpoint.description == "Published when a customer checks out."
    assert endpoint.tags == ["shop"]
    assert endpoint.func.__name__ == "send_order"


def test_unannotated_payload_is_any() -> None:
    sender = Sender()

    @sender.event("E")
    def send_e(e):  # type: ignore[no-untyped-def]
        pass

    assert sender.endpoints["E"].payload_type is Any


def test_registration_errors_are_specific() -> None:
    sender = Sender()

    @sender.event("E")
    async def send_e(e: dict) -> None: ...

    with pytest.raises(RegistrationError, match="'E' already has an endpoint"):

        @sender.event("E")
        async def send_e_again(e: dict) -> None: ...

    with pytest.raises(RegistrationError, match="exactly one parameter, the payload; it takes 2"):

        @sender.event("Two")
        async def send_two(a: dict, b: dict) -> None: ...

    with pytest.raises(RegistrationError, match="exactly one parameter"):

        @sender.event("None")
        async def send_nothing() -> None: ...

    with pytest.raises(ConfigError, match="topic must be a non-empty name"):

        @sender.event("T", topic="")
        async def send_t(e: dict) -> None: ...

    with pytest.raises(RegistrationError, match="non-empty str"):
        sender.event("")


def test_unresolvable_annotation_is_a_registration_error() -> None:
    sender = Sender()
    with pytest.raises(RegistrationError, match="cannot resolve an annotation"):

        @sender.event("E")
        async def send_e(e: Missing) -> None: ...  # type: ignore[name-defined]  # noqa: F821


def test_no_topic_on_endpoint_or_config_fails_at_add_producer() -> None:
    sender = Sender()

    @sender.event("Routed", topic="here")
    async def send_routed(e: dict) -> None: ...

    @sender.event("Lost")
    async def send_lost(e: dict) -> None: ...

    app = EVKafkaApp()
    with pytest.raises(
        ConfigError, match=r"'Lost' \(.*send_lost\) has no topic.*'orders-producer'"
    ):
        app.add_producer({"bootstrap_servers": "x"}, sender, name="orders-producer")
    app.add_producer({"topic": "fallback"}, sender)


def test_add_producer_checks_config_name_and_sender() -> None:
    app = EVKafkaApp()
    sender = Sender()
    with pytest.raises(ConfigError, match="did you mean 'linger_ms'"):
        app.add_producer({"linger": 1}, sender)  # type: ignore[typeddict-unknown-key]
    app.add_producer({"topic": "t"}, sender, name="p")
    with pytest.raises(ConfigError, match="'p' is already registered"):
        app.add_producer({"topic": "t"}, sender, name="p")
    with pytest.raises(ConfigError, match="needs a Sender, not Handler"):
        app.add_producer({"topic": "t"}, Handler())  # type: ignore[arg-type]


async def test_calling_before_the_app_started_is_a_clear_error() -> None:
    sender = Sender()

    @sender.event("E", topic="t")
    async def send_e(e: dict) -> None: ...

    EVKafkaApp().add_producer({}, sender)
    with pytest.raises(
        NotStartedError, match=r"'.*send_e' \(event 'E'\) was called before the app"
    ):
        await send_e({})


async def test_payload_by_name_and_sending_options() -> None:
    sender = Sender()

    @sender.event("E", topic="own")
    async def send_e(event: dict) -> None: ...

    sent: list[Outgoing] = []
    producer = RecordingProducer({"topic": "default"}, sent)
    sender.bind(producer)
    async with producer:
        await send_e({"a": 1}, key="k", headers={"h": b"v"}, partition=2, timestamp_ms=5)
        await send_e(event={"b": 2})
        metadata = await send_e({"c": 3}, wait=True)
        delivery = await send_e({"d": 4})
        assert (await delivery).offset == 2  # the first went to partition 2
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            await send_e({}, other=1)
        with pytest.raises(TypeError, match="missing the payload argument 'event'"):
            await send_e()
    assert metadata.topic == "own" and metadata.offset == 1
    first = sent[0]
    assert (first.topic, first.key, first.partition, first.timestamp_ms) == ("own", b"k", 2, 5)
    assert first.headers == [("h", b"v"), ("Event-Type", b"E")]
    assert sent[1].value == b'{"b":2}'


def test_binding_is_one_running_producer_at_a_time_and_checks_late_endpoints() -> None:
    sender = Sender()
    first = RecordingProducer({}, [], name="first")
    sender.bind(first)
    with pytest.raises(ConfigError, match="already sends through running producer 'first'"):
        sender.bind(RecordingProducer({"topic": "t"}, []))
    with pytest.raises(ConfigError, match=r"'Late' .* has no topic"):

        @sender.event("Late")
        async def send_late(e: dict) -> None: ...

    sender.unbind(first)
    sender.bind(RecordingProducer({"topic": "t"}, []))


# -- in the app, under TestClient ---------------------------------------------


def make_app(**app_options: Any) -> tuple[EVKafkaApp, Sender, Any]:
    sender = Sender()

    @sender.event("Shipped")
    async def send_shipped(order: Order) -> None: ...

    app = EVKafkaApp(config={"topics": ["orders"]}, **app_options)

    @app.event("Placed")
    async def on_placed(order: Order) -> None:
        await send_shipped(order, key=str(order.id))

    app.add_producer({"topic": "shipments"}, sender)
    return app, sender, send_shipped


def test_testclient_records_what_endpoints_send() -> None:
    app, sender, _ = make_app()
    with TestClient(app) as client:
        client.send_event(topic="orders", event={"id": 7}, event_type="Placed")
        assert [(o.topic, o.event_type, o.key, o.value) for o in client.sent] == [
            ("shipments", "Shipped", b"7", b'{"id":7}')
        ]
        assert client.sent[0].headers == [("Event-Type", b"Shipped")]
        assert client.sent_events("Other") == []
    assert sender.producer is None


async def test_testclient_async_form_records_and_unbinds() -> None:
    app, _, send_shipped = make_app()
    async with TestClient(app) as client:
        await client.send_event(topic="orders", event={"id": 1}, event_type="Placed")
        metadata = await send_shipped(Order(id=2), wait=True)
        assert metadata.offset == 1
        assert [o.payload for o in client.sent_events("Shipped")] == [Order(id=1), Order(id=2)]
    with pytest.raises(NotStartedError):
        await send_shipped(Order(id=3))


@pytest.mark.parametrize(
    ("middleware", "type_header"),
    [
        ([Middleware(JsonTypedDecoderMiddleware, type_header_name="X-Kind")], "X-Kind"),
        ([Middleware(CloudEventsBinaryMiddleware)], "ce_type"),
    ],
)
def test_default_convention_is_the_one_the_app_reads(
    middleware: list[Middleware], type_header: str
) -> None:
    app, _, _ = make_app(middleware=middleware)
    with TestClient(app) as client:
        client.send_event(topic="orders", event={"id": 1}, event_type="Placed")
        assert dict(client.sent[0].headers)[type_header] == b"Shipped"


def test_explicit_convention_and_publish_middleware_apply_in_the_app() -> None:
    class Stamp:
        def __init__(self, app: Any, value: bytes) -> None:
            self.app = app
            self.value = value

        async def __call__(self, outgoing: Outgoing) -> None:
            outgoing.headers.append(("stamp", self.value))
            await self.app(outgoing)

    sender = Sender()

    @sender.event("E")
    async def send_e(e: dict) -> None: ...

    app = EVKafkaApp(config={"topics": ["in"]})

    @app.event("In")
    async def on_in(e: dict) -> None:
        await send_e(e)

    app.add_producer(
        {"topic": "out"},
        sender,
        middleware=[Middleware(Stamp, value=b"s1")],
        convention=HeaderConvention("Kind"),
    )
    assert isinstance(app.producers["producer-1"].convention, HeaderConvention)
    with TestClient(app) as client:
        client.send_event(topic="in", event={}, event_type="In")
    assert client.sent[0].headers == [("stamp", b"s1"), ("Kind", b"E")]


def test_cloudevents_convention_object_is_shared_by_both_directions() -> None:
    app = EVKafkaApp(middleware=[Middleware(CloudEventsBinaryMiddleware, source="svc")])
    app.add_producer({"topic": "t"}, Sender())
    convention = app.producers["producer-1"].convention
    assert isinstance(convention, CloudEventsBinary) and convention.source == "svc"


async def test_a_producer_that_cannot_connect_fails_the_app_start() -> None:
    from evkafka.devbroker import free_port

    sender = Sender()

    @sender.event("E", topic="t")
    async def send_e(e: dict) -> None: ...

    app = EVKafkaApp()
    app.add_producer({"bootstrap_servers": f"127.0.0.1:{free_port()}"}, sender, name="nowhere")
    async with asyncio.timeout(20):
        assert await app.serve() == 1
    assert sender.producer is None
    with pytest.raises(NotStartedError):
        await send_e({})
