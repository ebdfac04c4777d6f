"""Metrics middleware without a broker: counts, histogram, exposition, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from evkafka import ErrorPolicy, EVKafkaApp, Handler, Sender, TestClient
from evkafka.errors import ConfigError, DeliveryError
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorEvent
from evkafka.middleware.metrics import (
    MAX_UNMATCHED_TYPES,
    OTHER_EVENT_TYPE,
    Metrics,
    MetricsMiddleware,
    PublishMetricsMiddleware,
)
from evkafka.middleware.publish import build_publish_chain
from evkafka.outgoing import Outgoing

CONFIG = {"topics": ["orders"], "bootstrap_servers": "localhost:9092", "group_id": "g"}


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition (parsed back by prometheus' own parser)."""
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def inbound(event_type: str, **extra: str) -> dict[str, str]:
    return {"consumer": "c", "topic": "orders", "event_type": event_type, **extra}


def app_with(metrics: Metrics, handler: Handler, policy: ErrorPolicy | None = None) -> EVKafkaApp:
    app = EVKafkaApp(middleware=[metrics.middleware()], error_policy=policy)
    app.add_consumer(CONFIG, handler, name="c")  # type: ignore[arg-type]
    return app


async def test_handled_skipped_and_failed_are_counted_by_event_type() -> None:
    metrics = Metrics()
    handler = Handler()

    @handler.event("Good")
    async def good(payload: dict) -> None:
        pass

    @handler.event("Bad")
    async def bad(payload: dict) -> None:
        raise RuntimeError("boom")

    app = app_with(metrics, handler, ErrorPolicy(retries=0, on_failure="skip"))
    async with TestClient(app) as client:
        for i in range(3):
            await client.send_event("orders", {"i": i}, "Good")
        await client.send_event("orders", {}, "Nobody")
        await client.send_event("orders", {}, "Bad")
    assert value(metrics, "evkafka_messages_received_total", **inbound("Good")) == 3
    assert value(metrics, "evkafka_messages_handled_total", **inbound("Good")) == 3
    assert value(metrics, "evkafka_messages_skipped_total", **inbound("Nobody")) == 1
    assert value(metrics, "evkafka_messages_handled_total", **inbound("Nobody")) == 0
    assert value(metrics, "evkafka_messages_received_total", **inbound("Bad")) == 1
    assert (
        value(metrics, "evkafka_messages_failed_total", **inbound("Bad", error="RuntimeError"))
        == 1
    )
    assert value(metrics, "evkafka_messages_discarded_total", **inbound("Bad")) == 1
    assert value(metrics, "evkafka_endpoint_duration_seconds_count", **inbound("Good")) == 3
    assert value(metrics, "evkafka_endpoint_duration_seconds_count", **inbound("Bad")) == 1
    assert value(metrics, "evkafka_messages_in_flight", consumer="c") == 0


async def test_a_retried_message_is_received_once_and_failed_per_attempt() -> None:
    metrics = Metrics()
    handler = Handler()
    calls = 0

    @handler.event("Flaky")
    async def flaky(payload: dict) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ValueError("not yet")

    app = app_with(metrics, handler, ErrorPolicy(retries=3, backoff_ms=0, jitter=0))
    async with TestClient(app) as client:
        await client.send_event("orders", {}, "Flaky")
    assert value(metrics, "evkafka_messages_received_total", **inbound("Flaky")) == 1
    assert value(metrics, "evkafka_messages_failed_total", **inbound("Flaky", error="ValueError")) == 2
    assert value(metrics, "evkafka_messages_retried_total", **inbound("Flaky")) == 2
    assert value(metrics, "evkafka_messages_handled_total", **inbound("Flaky")) == 1


async def test_undecodable_message_counts_as_failed_with_the_decode_error() -> None:
    metrics = Metrics()
    handler = Handler()

    @handler.event("Typed")
    async def typed(payload: dict) -> None:
        pass

    app = app_with(metrics, handler, ErrorPolicy(on_failure="skip"))
    async with TestClient(app) as client:
        await client.send_event("orders", "not a dict", "Typed")
    assert (
        value(metrics, "evkafka_messages_failed_total", **inbound("Typed", error="PayloadDecodeError"))
        == 1
    )
    # never retried: undecodable records go straight to the terminal action
    assert value(metrics, "evkafka_messages_retried_total", **inbound("Typed")) == 0


def test_dead_letter_and_skip_events_are_counted() -> None:
    metrics = Metrics()
    layer = MetricsMiddleware(_noop, metrics=metrics)
    message = Message("orders", 0, 7, None, b"{}", (), 0, consumer_name="c")
    message.event_type = "Bad"
    error = RuntimeError("x")
    layer.on_error_event(ErrorEvent("dead-letter", message, error, 2, 0.0, "orders.DLT"))
    layer.on_error_event(ErrorEvent("skip", message, error, 2))
    layer.on_error_event(ErrorEvent("stop", message, error, 2))
    assert value(metrics, "evkafka_messages_dead_lettered_total", **inbound("Bad")) == 1
    assert value(metrics, "evkafka_messages_discarded_total", **inbound("Bad")) == 1


async def _noop(message: Message) -> None:
    return None


async def test_in_flight_gauge_counts_messages_inside_the_layer() -> None:
    metrics = Metrics()
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(message: Message) -> None:
        entered.set()
        await release.wait()

    layer = MetricsMiddleware(slow, metrics=metrics)
    task = asyncio.create_task(layer(Message("orders", 0, 0, None, b"{}", (), 0, consumer_name="c")))
    async with asyncio.timeout(5):
        await entered.wait()
    assert value(metrics, "evkafka_messages_in_flight", consumer="c") == 1
    release.set()
    async with asyncio.timeout(5):
        await task
    assert value(metrics, "evkafka_messages_in_flight", consumer="c") == 0


async def test_cancelled_message_leaves_the_in_flight_gauge_and_is_not_a_failure() -> None:
    metrics = Metrics()

    entered = asyncio.Event()

    async def forever(message: Message) -> None:
        entered.set()
        await asyncio.Event().wait()

    layer = MetricsMiddleware(forever, metrics=metrics)
    task = asyncio.create_task(layer(Message("orders", 0, 0, None, b"{}", (), 0, consumer_name="c")))
    async with asyncio.timeout(5):
        await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.in_flight() == {"c": 0}
    assert metrics.inbound == {}


async def test_histogram_buckets_are_cumulative_and_sum_the_durations() -> None:
    metrics = Metrics(buckets=(0.5, 1.0))
    layer = MetricsMiddleware(_routed, metrics=metrics)
    for offset in range(4):
        await layer(Message("orders", 0, offset, None, b"{}", (), 0, consumer_name="c"))
    labels = inbound("E")
    assert value(metrics, "evkafka_endpoint_duration_seconds_bucket", **labels, le="0.5") == 4
    assert value(metrics, "evkafka_endpoint_duration_seconds_bucket", **labels, le="1.0") == 4
    assert value(metrics, "evkafka_endpoint_duration_seconds_bucket", **labels, le="+Inf") == 4
    total = value(metrics, "evkafka_endpoint_duration_seconds_sum", **labels)
    assert total is not None and 0 < total < 0.5


class _Endpoint:
    name = "e"
    error_policy = None


async def _routed(message: Message) -> None:
    message.event_type = "E"
    message.endpoint = _Endpoint()  # type: ignore[assignment]


async def test_unmatched_event_types_get_a_bounded_number_of_series() -> None:
    metrics = Metrics()
    layer = MetricsMiddleware(_unrouted, metrics=metrics)
    extra = 25
    for i in range(MAX_UNMATCHED_TYPES + extra):
        message = Message("orders", 0, i, None, b"{}", (("Event-Type", b"junk-%d" % i),), 0)
        message.consumer_name = "c"
        await layer(message)
    assert len(metrics.inbound) == MAX_UNMATCHED_TYPES + 1
    assert value(metrics, "evkafka_messages_skipped_total", **inbound(OTHER_EVENT_TYPE)) == extra
    assert value(metrics, "evkafka_messages_skipped_total", **inbound("junk-0")) == 1


async def _unrouted(message: Message) -> None:
    message.event_type = (message.header("Event-Type") or b"").decode()


#: One str object per type, as the event-type conventions hand them out.
TYPES = {b"A": "A", b"B": "B"}


async def _typed(message: Message) -> None:
    message.event_type = TYPES[message.header("Event-Type") or b""]
    message.endpoint = _Endpoint()  # type: ignore[assignment]


async def test_interleaved_topics_and_event_types_each_count_in_their_own_series() -> None:
    metrics = Metrics()
    layer = MetricsMiddleware(_typed, metrics=metrics)
    sequence = [("orders", "A"), ("orders", "A"), ("orders", "B"), ("refunds", "A"), ("orders", "A")]
    for offset, (topic, event_type) in enumerate(sequence):
        headers = (("Event-Type", event_type.encode()),)
        await layer(Message(topic, 0, offset, None, b"{}", headers, 0, consumer_name="c"))
    handled = "evkafka_messages_handled_total"
    assert value(metrics, handled, **inbound("A")) == 3
    assert value(metrics, handled, **inbound("B")) == 1
    assert value(metrics, handled, consumer="c", topic="refunds", event_type="A") == 1


async def test_publish_layer_counts_sends_and_delivery_failures() -> None:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    outcomes: list[BaseException | None] = [None, RuntimeError("broker said no"), None]

    async def transmit(outgoing: Outgoing) -> None:
        future: asyncio.Future[Any] = loop.create_future()
        outcome = outcomes.pop(0)
        if outcome is None:
            future.set_result("ok")
        else:
            future.set_exception(outcome)
        outgoing.delivery = future

    chain = build_publish_chain([metrics.publish_middleware()], transmit)
    for _ in range(3):
        await chain(Outgoing("out", "Sent", {}))
    labels = {"topic": "out", "event_type": "Sent"}
    assert value(metrics, "evkafka_events_sent_total", **labels) == 3
    assert value(metrics, "evkafka_events_delivery_failed_total", **labels) == 1


async def test_publish_layer_counts_a_send_that_raises_and_reraises_it() -> None:
    metrics = Metrics()

    async def refuse(outgoing: Outgoing) -> None:
        raise DeliveryError("cannot send")

    chain = build_publish_chain([metrics.publish_middleware()], refuse)
    with pytest.raises(DeliveryError):
        await chain(Outgoing("out", "Sent", {}))
    labels = {"topic": "out", "event_type": "Sent"}
    assert value(metrics, "evkafka_events_sent_total", **labels) == 0
    assert value(metrics, "evkafka_events_delivery_failed_total", **labels) == 1


async def test_events_sent_from_an_endpoint_are_counted_under_test_client() -> None:
    metrics = Metrics()
    handler, sender = Handler(), Sender()

    @sender.event("Pong", topic="pongs")
    async def send_pong(payload: dict) -> None: ...

    @handler.event("Ping")
    async def ping(payload: dict) -> None:
        await send_pong(payload)

    app = app_with(metrics, handler)
    app.add_producer({"bootstrap_servers": "x"}, sender, middleware=[metrics.publish_middleware()])
    async with TestClient(app) as client:
        await client.send_event("orders", {"n": 1}, "Ping")
        await client.send_event("orders", {"n": 2}, "Ping")
    assert value(metrics, "evkafka_events_sent_total", topic="pongs", event_type="Pong") == 2
    assert value(metrics, "evkafka_events_delivery_failed_total", topic="pongs", event_type="Pong") == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry
    assert first.registry is not REGISTRY


def test_the_global_registry_can_be_used() -> None:
    metrics = Metrics(registry=REGISTRY)
    try:
        assert REGISTRY.get_sample_value("evkafka_messages_in_flight", {"consumer": "x"}) is None
        families = {m.name for m in REGISTRY.collect()}
        assert "evkafka_messages_received" in families
    finally:
        REGISTRY.unregister(metrics.collector)


def test_instrument_installs_metrics_route_on_the_app_server() -> None:
    metrics = Metrics()
    app = EVKafkaApp()
    assert not app.serves_http
    metrics.instrument(app)
    assert app.serves_http
    with pytest.raises(ConfigError, match="already instrumented"):
        metrics.instrument(app)


def test_instrument_needs_an_app_with_an_http_server() -> None:
    with pytest.raises(ConfigError, match="no HTTP server"):
        Metrics().instrument(object())


def test_middleware_without_metrics_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"metrics=Metrics\(\)"):
        MetricsMiddleware(_noop)
    with pytest.raises(ConfigError, match=r"metrics=Metrics\(\)"):
        PublishMetricsMiddleware(_noop)  # type: ignore[arg-type]


def test_declared_without_metrics_fails_when_the_chain_is_built() -> None:
    handler = Handler()
    app = EVKafkaApp(middleware=[Middleware(MetricsMiddleware)])
    app.add_consumer(CONFIG, handler, name="c")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"metrics\.middleware\(\)"):
        with TestClient(app) as client:
            client.send_event("orders", {}, "E")


@pytest.mark.parametrize(
    ("buckets", "match"),
    [
        ((), "at least one"),
        ((1.0, 0.5), "strictly increasing"),
        ((0.1, 0.1), "strictly increasing"),
        ((-1.0, 1.0), "positive finite"),
        ((0.1, float("nan")), "positive finite"),
        (("fast",), "sequence of numbers"),
        (None, "sequence of numbers"),
    ],
)
def test_bad_buckets_are_rejected(buckets: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Metrics(buckets=buckets)


def test_a_trailing_infinity_bucket_is_accepted() -> None:
    assert Metrics(buckets=(0.1, float("inf"))).bounds == (0.1,)


def test_registry_must_be_a_collector_registry() -> None:
    with pytest.raises(ConfigError, match="CollectorRegistry"):
        Metrics(registry={})  # type: ignore[arg-type]
    assert isinstance(Metrics(registry=CollectorRegistry()).registry, CollectorRegistry)
