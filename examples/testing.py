"""Testing with TestClient: plain synchronous tests, no broker.

`TestClient(app)` runs the lifespan, sends each event through the consumer's whole
middleware stack (routing by the real event-type header) to the endpoint, waits for it,
and raises the endpoint's exception in the test (unless the error policy absorbs it:
dead letters are kept in `client.dead_letters`). Senders produce into `client.sent`.
Copy these into your own `tests/`; evkafka's suite runs them as they are.
"""

from __future__ import annotations

import pytest

from evkafka import TestClient
from evkafka.errors import PayloadDecodeError
from examples.consumer_producer import BarEvent
from examples.consumer_producer import app as foo_to_bar
from examples.lifespan_state import app as inventory_app
from examples.lifespan_state import opened
from examples.quickstart import app as quickstart


def test_foo_event_becomes_bar_event() -> None:
    with TestClient(foo_to_bar) as client:
        client.send_event(
            topic="foo", event={"id": 7, "text": "hello"}, event_type="FooEvent", key=b"k7"
        )
    [bar] = client.sent_events("BarEvent")
    assert bar.topic == "bar"
    assert bar.key == b"k7"
    assert bar.payload == BarEvent(id=7, text="HELLO", length=5)
    assert bar.header("Event-Type") == b"BarEvent"


def test_a_payload_that_does_not_fit_the_model_raises() -> None:
    with TestClient(foo_to_bar) as client, pytest.raises(PayloadDecodeError, match="FooEvent"):
        client.send_event(topic="foo", event={"id": "seven"}, event_type="FooEvent")
    assert client.sent == []


def test_undecodable_records_are_dead_lettered_in_memory() -> None:
    with TestClient(quickstart) as client:
        client.send_event(topic="orders", event={"id": "not a number"}, event_type="OrderCreated")
    [dead] = client.dead_letters
    assert dead.topic == "orders.DLT"
    assert isinstance(dead.error, PayloadDecodeError)
    assert dict(dead.headers)["evkafka-dlt-error-type"] == b"evkafka.errors.PayloadDecodeError"


def test_unknown_event_types_are_skipped_and_committed() -> None:
    with TestClient(foo_to_bar) as client:
        client.send_event(topic="foo", event={}, event_type="SomethingElse")
    assert client.sent == []
    assert client.committers["foo"].committed == {("foo", 0): 1}


def test_lifespan_state_reaches_the_endpoint_and_is_closed_after() -> None:
    with TestClient(inventory_app) as client:
        client.send_event(
            topic="stock", event={"sku": "A1", "quantity": 3}, event_type="StockReceived"
        )
        client.send_event(
            topic="stock", event={"sku": "A1", "quantity": 2}, event_type="StockReceived"
        )
        inventory = opened[-1]
        assert inventory.open
    assert inventory.stock == {"A1": 5}
    assert not inventory.open


async def test_async_tests_use_async_with() -> None:
    async with TestClient(foo_to_bar) as client:
        await client.send_event(topic="foo", event={"id": 1, "text": "a"}, event_type="FooEvent")
    assert [o.payload.id for o in client.sent_events("BarEvent")] == [1]
