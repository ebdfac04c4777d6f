"""Metrics, lag and tracing against the real broker, scraped over the app's HTTP server."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from evkafka import ErrorPolicy, EVKafkaApp, Handler, Request, Sender
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorEvent
from evkafka.middleware.metrics import Metrics
from evkafka.middleware.tracing import PublishTracingMiddleware, TracingMiddleware
from evkafka.types import MessageApp
from tests.brokerkit import consumer_config, create_topic, event, produce, read_all

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(app: EVKafkaApp) -> Samples:
    """GET /metrics from the running app and parse it with prometheus' text parser."""
    assert app.http_server is not None
    url = f"http://127.0.0.1:{app.http_server.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_counters_and_lag_follow_a_scripted_run(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=3)
    # p0: 5 handled, 2 unmatched, 1 failing (dead-lettered); p1: 4 slow, the first one held;
    # p2: empty.
    await produce(
        bootstrap,
        topic,
        [event(b'{"i": %d}' % i, "Good", partition=0) for i in range(5)]
        + [event(b"{}", "Nobody", partition=0) for _ in range(2)]
        + [event(b"{}", "Bad", partition=0)]
        + [event(b'{"i": %d}' % i, "Slow", partition=1) for i in range(4)],
    )
    handled: Counter[str] = Counter()
    dead_lettered, slow_entered, release, all_done = (asyncio.Event() for _ in range(4))
    handler = Handler()

    @handler.event("Good")
    async def good(payload: dict) -> None:
        handled["Good"] += 1

    @handler.event("Bad")
    async def bad(payload: dict, request: Request) -> None:
        handled["Bad"] += 1
        raise RuntimeError("always fails")

    @handler.event("Slow")
    async def slow(payload: dict) -> None:
        slow_entered.set()
        await release.wait()
        handled["Slow"] += 1
        if handled["Slow"] == 4:
            all_done.set()

    metrics = Metrics()
    app = EVKafkaApp(
        middleware=[metrics.middleware(), Middleware(SeeDeadLetters, seen=dead_lettered)],
        error_policy=ErrorPolicy(retries=1, backoff_ms=0, on_failure="dead-letter"),
        http_host="127.0.0.1",
        http_port=0,
        graceful_timeout_ms=5000,
    )
    app.add_consumer(consumer_config(bootstrap, topic), handler, name="obs")
    metrics.instrument(app)
    await app.start()
    try:
        async with asyncio.timeout(30):
            await slow_entered.wait()
            await dead_lettered.wait()
        # the commit layer marked it done in the same step as the error policy reported it
        consumer = app._running[0]
        assert consumer.workers[_tp(topic, 0)].first_unfinished == 8
        await consumer.commit()
        during = await scrape(app)
        labels = {"consumer": "obs", "topic": topic}
        assert get(during, "evkafka_messages_handled_total", **labels, event_type="Good") == 5
        assert get(during, "evkafka_messages_received_total", **labels, event_type="Good") == 5
        assert get(during, "evkafka_messages_skipped_total", **labels, event_type="Nobody") == 2
        assert get(during, "evkafka_messages_received_total", **labels, event_type="Bad") == 1
        failed = {**labels, "event_type": "Bad", "error": "RuntimeError"}
        assert get(during, "evkafka_messages_failed_total", **failed) == 2
        assert get(during, "evkafka_messages_retried_total", **labels, event_type="Bad") == 1
        assert get(during, "evkafka_messages_dead_lettered_total", **labels, event_type="Bad") == 1
        assert get(during, "evkafka_messages_in_flight", consumer="obs") == 1  # the held one
        p0, p1, p2 = ({**labels, "partition": str(p)} for p in range(3))
        assert get(during, "evkafka_consumer_lag", **p0) == 0
        assert get(during, "evkafka_consumer_processing_lag", **p0) == 0
        assert get(during, "evkafka_consumer_processing_lag", **p1) == 4  # all 4 unfinished
        assert get(during, "evkafka_consumer_lag", **p1) is None  # nothing committed yet
        assert get(during, "evkafka_consumer_buffered", **p1) is not None
        assert get(during, "evkafka_consumer_lag", **p2) == 0  # empty: fetch position = hw
        assert get(during, "evkafka_commits_total", consumer="obs") >= 1  # type: ignore[operator]

        release.set()
        async with asyncio.timeout(30):
            await all_done.wait()
        assert consumer.workers[_tp(topic, 1)].first_unfinished == 4
        await consumer.commit()
        after = await scrape(app)
        assert get(after, "evkafka_messages_handled_total", **labels, event_type="Slow") == 4
        assert get(after, "evkafka_consumer_lag", **p1) == 0
        assert get(after, "evkafka_consumer_processing_lag", **p1) == 0
        assert get(after, "evkafka_messages_in_flight", consumer="obs") == 0
        commits = get(after, "evkafka_commits_total", consumer="obs")
        assert commits is not None and commits >= 2
        assert get(after, "evkafka_commit_duration_seconds_count", consumer="obs") == commits
        assert get(after, "evkafka_commit_failures_total", consumer="obs") == 0
        slow_count = get(
            after, "evkafka_endpoint_duration_seconds_count", **labels, event_type="Slow"
        )
        assert slow_count == 4
    finally:
        release.set()
        await app.stop()
    dead = await read_all(bootstrap, f"{topic}.DLT", 1)
    assert [r.offset for r in dead] == [0]


class SeeDeadLetters:
    """Sets `seen` when the error policy reports a dead-letter (then the offset is done)."""

    def __init__(self, app: MessageApp, seen: asyncio.Event) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, message: Message) -> None:
        await self.app(message)

    def on_error_event(self, event: ErrorEvent) -> None:
        if event.action == "dead-letter":
            self.seen.set()


def _tp(topic: str, partition: int) -> object:
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)


async def test_trace_id_in_traceparent_comes_out_on_produced_events(bootstrap: str) -> None:
    trace_id, parent_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    traceparent = f"00-{trace_id:032x}-{parent_id:016x}-01".encode()
    source = await create_topic(bootstrap, partitions=1)
    target = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, source, [event(b'{"n": 1}', "Ping", headers=[("traceparent", traceparent)])])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = Metrics()
    handler, sender = Handler(), Sender()

    @sender.event("Pong", topic=target)
    async def send_pong(payload: dict) -> None: ...

    sent = asyncio.Event()

    @handler.event("Ping")
    async def ping(payload: dict) -> None:
        await send_pong(payload, wait=True)
        sent.set()

    app = EVKafkaApp(middleware=[Middleware(TracingMiddleware, tracer_provider=provider)])
    app.add_consumer(consumer_config(bootstrap, source), handler)
    app.add_producer(
        {"bootstrap_servers": bootstrap},
        sender,
        middleware=[
            Middleware(PublishTracingMiddleware, tracer_provider=provider),
            metrics.publish_middleware(),
        ],
    )
    await app.start()
    try:
        async with asyncio.timeout(30):
            await sent.wait()
    finally:
        await app.stop()
    [record] = await read_all(bootstrap, target, 1)
    headers = dict(record.headers)
    _, out_trace, out_span, _ = headers["traceparent"].decode().split("-")
    assert int(out_trace, 16) == trace_id
    spans = exporter.get_finished_spans()
    [consumer_span] = [s for s in spans if s.kind is SpanKind.CONSUMER]
    [producer_span] = [s for s in spans if s.kind is SpanKind.PRODUCER]
    assert consumer_span.parent is not None and consumer_span.parent.span_id == parent_id
    assert consumer_span.attributes is not None
    assert consumer_span.attributes["messaging.destination.name"] == source
    assert producer_span.parent is not None
    assert producer_span.parent.span_id == consumer_span.context.span_id
    assert int(out_span, 16) == producer_span.context.span_id
    text = metrics.exposition().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sent_sample] = [s for s in families["evkafka_events_sent"].samples if s.name.endswith("_total")]
    assert sent_sample.labels == {"topic": target, "event_type": "Pong"} and sent_sample.value == 1
    [failed] = [
        s for s in families["evkafka_events_delivery_failed"].samples if s.name.endswith("_total")
    ]
    assert failed.value == 0
