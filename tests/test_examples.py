"""Every example in `examples/` runs here through TestClient (broker-bound parts: integration)."""

from __future__ import annotations

import logging
from inspect import iscoroutinefunction
from pathlib import Path

import pytest
from fastapi.testclient import TestClient as HTTPClient

from evkafka import TestClient
from evkafka.asyncapi import build_spec
from evkafka.errors import MissingEventTypeError, PayloadDecodeError
from evkafka.message import Message
from evkafka.testclient import InMemoryCommitter
from examples import (
    consumer_producer,
    error_policy,
    fastapi_embedding,
    header_conventions,
    lifespan_state,
    quickstart,
    testing,
    timing_middleware,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Example module -> where it is executed; a new example without an entry fails the suite.
EXECUTED_BY = {
    "quickstart": "here and tests/integration/test_demo.py (the demo runs it)",
    "consumer_producer": "here and examples/testing.py",
    "timing_middleware": "here",
    "header_conventions": "here",
    "error_policy": "here and tests/integration/test_examples.py",
    "lifespan_state": "here and examples/testing.py",
    "testing": "here",
    "fastapi_embedding": "here and tests/integration/test_examples.py",
}


def test_every_example_is_executed_by_the_suite() -> None:
    modules = {p.stem for p in EXAMPLES.glob("*.py") if p.stem != "__init__"}
    assert modules == set(EXECUTED_BY)


@pytest.mark.parametrize("name", sorted(EXECUTED_BY))
def test_every_example_documents_itself_and_builds_its_asyncapi(name: str) -> None:
    module = __import__(f"examples.{name}", fromlist=["app"])
    assert module.__doc__ and module.__doc__.strip()
    if name != "testing":
        spec = build_spec(module.app)
        assert spec["channels"], f"examples/{name}.py declares no channel"


# -- quickstart ---------------------------------------------------------------


def test_quickstart_routes_each_type_to_its_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="examples.quickstart")
    with TestClient(quickstart.app) as client:
        client.send_event("orders", {"id": 1, "amount": 9.5}, "OrderCreated")
        client.send_event("orders", {"id": 1, "method": "card"}, "OrderPaid")
        client.send_event("orders", {"id": 1, "country": "NL"}, "OrderShipped")
        client.send_event("orders", {"id": 1}, "OrderForgotten")  # no endpoint: skipped
    assert caplog.messages == [
        "order 1: 9.50 EUR (partition 0)",
        "order 1 paid by card",
        "order 1 shipped to NL",
    ]
    assert client.committers["default"].committed == {("orders", 0): 4}


def test_quickstart_dead_letters_what_cannot_be_decoded() -> None:
    with TestClient(quickstart.app) as client:
        client.send_event("orders", {"id": "one"}, "OrderCreated")
        client.send_event("orders", {"id": 2, "amount": 1}, "OrderCreated")
    [dead] = client.dead_letters
    assert dead.topic == "orders.DLT"
    assert isinstance(dead.error, PayloadDecodeError)
    assert dict(dead.headers)["evkafka-dlt-original-offset"] == b"0"
    assert client.committers["default"].committed == {("orders", 0): 2}


# -- consumer + producer ------------------------------------------------------


def test_consumer_producer_relays_foo_as_bar() -> None:
    with TestClient(consumer_producer.app) as client:
        for i in range(3):
            client.send_event("foo", {"id": i, "text": "x" * i}, "FooEvent", key=b"%d" % i)
    sent = client.sent_events("BarEvent")
    assert [(o.topic, o.key, o.payload.length) for o in sent] == [
        ("bar", b"0", 0),
        ("bar", b"1", 1),
        ("bar", b"2", 2),
    ]
    assert sent[0].value == b'{"id":0,"text":"","length":0}'


# -- custom middleware --------------------------------------------------------


def test_timing_middleware_measures_each_type_and_counts_retries(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = timing_middleware.stats
    monkeypatch.setattr(stats, "count", type(stats.count)())
    monkeypatch.setattr(stats, "seconds", type(stats.seconds)())
    caplog.set_level(logging.WARNING, logger="examples.timing_middleware")
    with TestClient(timing_middleware.app) as client:
        client.send_event("orders", {"id": 1}, "OrderCreated")
        client.send_event("orders", {"seconds": 0.06}, "ReportRequested")
    assert stats.count == {"OrderCreated": 1, "ReportRequested": 1}
    assert stats.seconds["ReportRequested"] >= 0.06
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith("slow ReportRequested at orders[0]@1")

    retries_before = stats.retries
    with TestClient(timing_middleware.app) as client, pytest.raises(TypeError):
        client.send_event("orders", {"seconds": "long"}, "ReportRequested")
    assert stats.retries - retries_before == 3  # the default policy: 3 retries, then stop


# -- header conventions -------------------------------------------------------


def test_one_handler_reads_three_conventions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="examples.header_conventions")
    order = {"id": 1, "amount": 2.5}
    with TestClient(header_conventions.app) as client:
        for name in ("legacy", "cloud", "audit"):
            client.send_event("t", order, "OrderCreated", consumer_name=name)
    assert caplog.messages == [
        "order 1 via consumer 'legacy' (CloudEvents source None)",
        "order 1 via consumer 'cloud' (CloudEvents source 'evkafka')",
        "order 1 via consumer 'audit' (CloudEvents source None)",
    ]


async def test_each_consumer_reads_only_its_own_convention() -> None:
    # The original evkafka header is not what these consumers read.
    record = Message(
        "t", 0, 0, None, b'{"id": 1, "amount": 1}', [("Event-Type", b"OrderCreated")], 0
    )
    for name, expected in (("legacy", "X-Event-Name"), ("cloud", "ce_type"), ("audit", "kind")):
        chain = header_conventions.app.consumers[name].chain(InMemoryCommitter())
        with pytest.raises(MissingEventTypeError, match=expected):
            await chain(record)


async def test_the_cloud_producer_writes_cloudevents_binary_headers() -> None:
    order = header_conventions.OrderCreated(id=3, amount=1.0)
    async with TestClient(header_conventions.app) as client:
        await header_conventions.publish_order_created(order)
    [out] = client.sent
    assert out.topic == "orders.v2"
    assert out.header("ce_type") == b"OrderCreated"
    assert out.header("ce_source") == b"billing"
    assert out.header("Event-Type") is None


# -- error policy ---------------------------------------------------------------


def test_error_policy_books_known_accounts_and_skips_bad_audits(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(error_policy, "booked", [])
    with TestClient(error_policy.app) as client:
        client.send_event("payments", {"id": 1, "account": "alice", "cents": 5}, "PaymentRequested")
        client.send_event("payments", {"note": "no id"}, "PaymentAudited")  # skipped by policy
        client.send_event("payments", {"id": 2, "account": "eve", "cents": 5}, "PaymentRequested")
    assert [p.id for p in error_policy.booked] == [1]
    [dead] = client.dead_letters
    assert dead.topic == "payments.DLT" and isinstance(dead.error, error_policy.UnknownAccount)
    assert dict(dead.headers)["evkafka-dlt-attempts"] == b"1"  # never retried
    assert any("skipped after 1 attempt(s)" in m for m in caplog.messages)


def test_error_policy_never_retries_an_unknown_account() -> None:
    policy = error_policy.POLICY
    assert not policy.retryable(error_policy.UnknownAccount("x"))
    assert policy.retryable(ConnectionError("flaky"))
    assert policy.dead_letter_topic_for("payments", "payments", "payments") == "payments.DLT"


# -- lifespan -------------------------------------------------------------------


def test_lifespan_state_is_opened_shared_and_closed() -> None:
    with TestClient(lifespan_state.app) as client:
        client.send_event("stock", {"sku": "B2", "quantity": 4}, "StockReceived")
        inventory = lifespan_state.opened[-1]
        assert inventory.open
    assert inventory.stock == {"B2": 4}
    assert not inventory.open


# -- testing: run the example tests themselves ------------------------------------------


EXAMPLE_TESTS = {n: f for n, f in vars(testing).items() if n.startswith("test_")}


@pytest.mark.parametrize(
    "name", sorted(n for n, f in EXAMPLE_TESTS.items() if not iscoroutinefunction(f))
)
def test_the_testing_example(name: str) -> None:
    EXAMPLE_TESTS[name]()


@pytest.mark.parametrize(
    "name", sorted(n for n, f in EXAMPLE_TESTS.items() if iscoroutinefunction(f))
)
async def test_the_async_testing_example(name: str) -> None:
    await EXAMPLE_TESTS[name]()


# -- FastAPI (the HTTP side without a broker; the whole loop is an integration test) ----


def test_fastapi_reads_orders_the_consumer_recorded() -> None:
    app, api = fastapi_embedding.build("unused:9092", topic="orders")
    http = HTTPClient(api)  # not entered: FastAPI's lifespan, which starts Kafka, stays off
    with TestClient(app) as client:
        assert http.get("/orders/5").status_code == 404
        client.send_event("orders", {"id": 5, "item": "lamp"}, "OrderCreated")
        found = http.get("/orders/5")
    assert found.status_code == 200
    assert found.json() == {"id": 5, "item": "lamp"}
