"""TestClient: real routing through the whole stack, waiting, exceptions surfaced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pydantic
import pytest

from evkafka import EVKafkaApp, Handler, Middleware, Request, TestClient
from evkafka.errors import PayloadDecodeError
from evkafka.middleware import CloudEventsBinaryMiddleware, JsonTypedDecoderMiddleware


class Item(pydantic.BaseModel):
    id: int


def test_event_reaches_the_endpoint_before_send_returns() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})
    got: list[Item] = []

    @app.event("Item")
    async def on_item(item: Item) -> None:
        got.append(item)

    with TestClient(app) as client:
        client.send_event(topic="t", event=b'{"id": 1}', event_type="Item")
        assert got == [Item(id=1)]
        client.send_event(topic="t", event={"id": 2}, event_type="Item")
        client.send_event(topic="t", event=Item(id=3), event_type="Item")
    assert [i.id for i in got] == [1, 2, 3]


def test_endpoint_exception_is_raised_in_the_test() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})

    @app.event("E")
    async def on_e(event: dict) -> None:
        raise LookupError("from the endpoint")

    with TestClient(app) as client, pytest.raises(LookupError, match="from the endpoint"):
        client.send_event(topic="t", event={}, event_type="E")


def test_bad_payload_raises_the_typed_decode_error() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})

    @app.event("E")
    async def on_e(event: Item) -> None: ...

    with TestClient(app) as client, pytest.raises(PayloadDecodeError, match=r"t\[0\]@0"):
        client.send_event(topic="t", event=b"{nope", event_type="E")


def test_unmatched_event_is_skipped_and_committed() -> None:
    app = EVKafkaApp(config={"topics": ["t"]}, name="main")

    @app.event("E")
    async def on_e(event: dict) -> None:
        raise AssertionError("must not run")

    with TestClient(app) as client:
        client.send_event(topic="t", event={}, event_type="Other")
        assert client.committers["main"].committed == {("t", 0): 1}


def test_routing_uses_the_consumers_own_header_convention() -> None:
    app = EVKafkaApp(
        config={"topics": ["t"]},
        middleware=[Middleware(JsonTypedDecoderMiddleware, type_header_name="Custom-Type-Header")],
    )
    got: list[tuple[dict, dict[str, bytes]]] = []

    @app.event("E")
    async def on_e(event: dict, request: Request) -> None:
        got.append((event, request.headers))

    with TestClient(app) as client:
        client.send_event(topic="t", event={"a": 1}, event_type="E", headers={"X": b"1"})
    assert got == [({"a": 1}, {"X": b"1", "Custom-Type-Header": b"E"})]


def test_consumer_name_picks_among_several() -> None:
    app = EVKafkaApp()
    a, b = Handler(), Handler()
    got: list[str] = []

    @a.event("E")
    async def on_a(event: dict) -> None:
        got.append("a")

    @b.event("E")
    async def on_b(event: dict) -> None:
        got.append("b")

    app.add_consumer({"topics": ["t"]}, a, name="first")
    app.add_consumer({"topics": ["t"]}, b, name="second", middleware=[Middleware(CloudEventsBinaryMiddleware)])
    with TestClient(app) as client:
        with pytest.raises(AssertionError, match="consumer_name"):
            client.send_event(topic="t", event={}, event_type="E")
        with pytest.raises(AssertionError, match="no consumer named 'third'"):
            client.send_event(topic="t", event={}, event_type="E", consumer_name="third")
        client.send_event(topic="t", event={}, event_type="E", consumer_name="second")
        client.send_event(topic="t", event={}, event_type="E", consumer_name="first")
    assert got == ["b", "a"]


def test_lifespan_runs_on_enter_and_exit_and_state_reaches_endpoints() -> None:
    calls: list[str] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[dict[str, str]]:
        calls.append("start")
        yield {"db": "conn"}
        calls.append("stop")

    app = EVKafkaApp(config={"topics": ["t"]}, lifespan=lifespan)

    @app.event("E")
    async def on_e(event: dict, request: Request) -> None:
        calls.append(request.state.db)

    with TestClient(app) as client:
        assert calls == ["start"]
        client.send_event(topic="t", event={}, event_type="E")
    assert calls == ["start", "conn", "stop"]


async def test_async_form_for_async_tests() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})
    got: list[dict] = []

    @app.event("E")
    async def on_e(event: dict) -> None:
        got.append(event)

    async with TestClient(app) as client:
        await client.send_event(topic="t", event={"x": 1}, event_type="E")
    assert got == [{"x": 1}]


def test_sync_form_inside_a_running_loop_is_refused() -> None:
    import asyncio

    async def inside() -> None:
        with TestClient(EVKafkaApp()):
            pass

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(inside())


def test_dead_lettered_records_are_kept_in_memory() -> None:
    from evkafka import ErrorPolicy

    app = EVKafkaApp(
        config={"topics": ["t"], "group_id": "g"},
        error_policy=ErrorPolicy(on_failure="dead-letter", retries=0),
    )
    handled: list[Item] = []

    @app.event("Item")
    async def on_item(item: Item) -> None:
        handled.append(item)

    with TestClient(app) as client:
        client.send_event(topic="t", event=b"{broken", event_type="Item", key=b"k")
        client.send_event(topic="t", event={"id": 2}, event_type="Item")
        assert client.committers["default"].committed == {("t", 0): 2}
    assert handled == [Item(id=2)]
    (letter,) = client.dead_letters
    assert (letter.topic, letter.key, letter.value) == ("t.DLT", b"k", b"{broken")
    assert isinstance(letter.error, PayloadDecodeError)
    headers = dict(letter.headers)
    assert headers["Event-Type"] == b"Item"
    assert headers["evkafka-dlt-original-offset"] == b"0"
