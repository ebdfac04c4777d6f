"""Code written against the original evkafka 0.7 docs runs unchanged (TestClient)."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import Any

import pydantic

from evkafka import EVKafkaApp, Handler, Request, TestClient
from evkafka.middleware import JsonTypedDecoderMiddleware, Middleware


class EventPayload(pydantic.BaseModel):
    name: str


def test_documented_imports_exist() -> None:
    from evkafka import EVKafkaApp, Handler, Request, TestClient  # noqa: F401
    from evkafka.config import BrokerConfig, ConsumerConfig, ProducerConfig, TopicConfig  # noqa: F401
    from evkafka.middleware import JsonTypedDecoderMiddleware, Middleware  # noqa: F401


def test_endpoints_page_examples() -> None:
    product_handler, cart_handler = Handler(), Handler()
    seen: list[Any] = []

    @product_handler.event("Event")
    async def handle_event(event: EventPayload, request: Request) -> None:
        assert "Some-Header" in request.headers
        seen.append(event)

    @cart_handler.event("RawEvent")
    def handle_raw(event: bytes) -> None:
        seen.append((event, threading.current_thread() is threading.main_thread()))

    handler = Handler()
    handler.include_handler(product_handler)
    handler.include_handler(cart_handler)

    config = {"topics": ["topic"], "bootstrap_servers": "kafka:9092", "group_id": "test"}
    app = EVKafkaApp()
    app.add_consumer(config, handler)  # type: ignore[arg-type]

    with TestClient(app) as client:
        client.send_event(topic="topic", event=b'{"name": "x"}', event_type="Event", headers={"Some-Header": b"1"})
        client.send_event(topic="topic", event=b"\x00raw", event_type="RawEvent")
    assert seen == [EventPayload(name="x"), (b"\x00raw", False)]


def test_app_event_shortcut_with_dict_payload() -> None:
    app = EVKafkaApp(config={"topics": ["topic"]})
    seen: list[dict] = []

    @app.event("Event")
    async def handle_event(event: dict) -> None:
        assert isinstance(event, dict)
        seen.append(event)

    with TestClient(app) as client:
        client.send_event(topic="topic", event=b'{"key":"value"}', event_type="Event")
    assert seen == [{"key": "value"}]


def test_request_metadata_direct_and_through_context() -> None:
    app = EVKafkaApp(config={"topics": ["topic"], "group_id": "g", "client_id": "c"})
    seen: dict[str, Any] = {}

    @app.event("Event")
    async def handle_event(event: dict, request: Request) -> None:
        seen.update(
            key=request.key,
            value=request.value,
            topic=request.topic,
            partition=request.partition,
            offset=request.offset,
            timestamp=request.timestamp,
            json=await request.json(),
            ctx_topic=request.context.consumer.topic,
            ctx_offset=request.context.consumer.offset,
            ctx_group=request.context.consumer.group_id,
            ctx_key=request.context.message.key,
        )

    with TestClient(app) as client:
        client.send_event(topic="topic", event={"a": 1}, event_type="Event", key=b"k", partition=3, timestamp_ms=99)
    assert seen == {
        "key": b"k",
        "value": b'{"a":1}',
        "topic": "topic",
        "partition": 3,
        "offset": 0,
        "timestamp": 99,
        "json": {"a": 1},
        "ctx_topic": "topic",
        "ctx_offset": 0,
        "ctx_group": "g",
        "ctx_key": b"k",
    }


def test_custom_type_header_middleware() -> None:
    app = EVKafkaApp(
        config={"topics": ["topic"]},
        middleware=[Middleware(JsonTypedDecoderMiddleware, type_header_name="Custom-Type-Header")],
    )
    seen: list[dict] = []

    @app.event("Event")
    async def handle_event(event: dict, request: Request) -> None:
        assert request.headers["Custom-Type-Header"] == b"Event"
        assert "Event-Type" not in request.headers
        seen.append(event)

    with TestClient(app) as client:
        client.send_event(topic="topic", event=b"{}", event_type="Event")
    assert seen == [{}]


def test_lifespan_yielding_state() -> None:
    @asynccontextmanager
    async def lifespan():  # type: ignore[no-untyped-def]
        yield {"value": 42}

    app = EVKafkaApp(config={"topics": ["topic"]}, lifespan=lifespan)
    seen: list[int] = []

    @app.event("Event")
    async def handle_event(event: dict, request: Request) -> None:
        seen.append(request.state.value)

    with TestClient(app) as client:
        client.send_event(topic="topic", event=b"{}", event_type="Event")
    assert seen == [42]


def test_starlette_style_lifespan_taking_the_app() -> None:
    started: list[object] = []

    @asynccontextmanager
    async def lifespan(app: EVKafkaApp):  # type: ignore[no-untyped-def]
        started.append(app)
        yield

    app = EVKafkaApp(config={"topics": ["topic"]}, lifespan=lifespan)
    with TestClient(app):
        pass
    assert started == [app]
