"""Tracing middleware without a broker: spans, attributes, propagation through headers."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import messaging_attributes as semconv
from opentelemetry.trace import SpanKind, StatusCode

from evkafka import ErrorPolicy, EVKafkaApp, Handler, Sender, TestClient
from evkafka.message import Headers, Message
from evkafka.middleware import Middleware
from evkafka.middleware.publish import build_publish_chain
from evkafka.middleware.tracing import (
    GETTER,
    MAX_HEADER_NAMES,
    HeaderGetter,
    HeaderSetter,
    PublishTracingMiddleware,
    RemoteParent,
    TracingMiddleware,
)
from evkafka.outgoing import Outgoing

CONFIG = {"topics": ["orders"], "bootstrap_servers": "localhost:9092", "group_id": "grp"}
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def traced_app(provider: TracerProvider, handler: Handler, **options: object) -> EVKafkaApp:
    app = EVKafkaApp(
        middleware=[Middleware(TracingMiddleware, tracer_provider=provider)],
        **options,  # type: ignore[arg-type]
    )
    app.add_consumer(CONFIG, handler, name="c")  # type: ignore[arg-type]
    return app


def ids(traceparent: bytes | None) -> tuple[int, int]:
    """(trace id, span id) of a W3C traceparent header value."""
    assert traceparent is not None
    version, trace_id, span_id, flags = traceparent.decode().split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return int(trace_id, 16), int(span_id, 16)


def only(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.kind is kind]
    assert len(found) == 1, spans
    return found[0]


def pong_app(provider: TracerProvider) -> EVKafkaApp:
    """A traced app whose `Ping` endpoint sends a `Pong` through a traced producer."""
    handler, sender = Handler(), Sender()

    @sender.event("Pong", topic="pongs")
    async def send_pong(payload: dict) -> None: ...

    @handler.event("Ping")
    async def ping(payload: dict) -> None:
        await send_pong(payload)

    app = traced_app(provider, handler)
    app.add_producer(
        {"bootstrap_servers": "x"},
        sender,
        middleware=[Middleware(PublishTracingMiddleware, tracer_provider=provider)],
    )
    return app


async def test_consumer_span_continues_the_trace_and_the_produced_event_carries_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with TestClient(pong_app(provider)) as client:
        await client.send_event(
            "orders", {"n": 1}, "Ping", key=b"k-1", headers={"traceparent": TRACEPARENT.encode()}
        )
    spans = exporter.get_finished_spans()
    consumer = only(spans, SpanKind.CONSUMER)
    producer = only(spans, SpanKind.PRODUCER)
    assert consumer.context.trace_id == TRACE_ID
    assert consumer.parent is not None and consumer.parent.span_id == PARENT_ID
    assert consumer.parent.is_remote
    assert producer.context.trace_id == TRACE_ID
    assert producer.parent is not None and producer.parent.span_id == consumer.context.span_id
    [pong] = client.sent_events("Pong")
    assert ids(pong.header("traceparent")) == (TRACE_ID, producer.context.span_id)


async def test_consumer_span_has_messaging_semantic_convention_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = Handler()

    @handler.event("Ping")
    async def ping(payload: dict) -> None:
        pass

    async with TestClient(traced_app(provider, handler)) as client:
        await client.send_event("orders", {"n": 1}, "Ping", key=b"k-1", partition=2)
    span = only(exporter.get_finished_spans(), SpanKind.CONSUMER)
    assert span.name == "process orders"
    assert span.parent is None  # no context in the headers: a new trace
    attributes = dict(span.attributes or {})
    assert attributes[semconv.MESSAGING_SYSTEM] == "kafka"
    assert attributes[semconv.MESSAGING_OPERATION_TYPE] == "process"
    assert attributes[semconv.MESSAGING_OPERATION_NAME] == "process"
    assert attributes[semconv.MESSAGING_DESTINATION_NAME] == "orders"
    assert attributes[semconv.MESSAGING_DESTINATION_PARTITION_ID] == "2"
    assert attributes[semconv.MESSAGING_KAFKA_OFFSET] == 0
    assert attributes[semconv.MESSAGING_CONSUMER_GROUP_NAME] == "grp"
    assert attributes[semconv.MESSAGING_KAFKA_MESSAGE_KEY] == "k-1"
    assert attributes["evkafka.event_type"] == "Ping"
    assert attributes["evkafka.consumer"] == "c"
    assert span.status.status_code is StatusCode.UNSET


async def test_failed_attempts_are_error_spans_one_per_attempt(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = Handler()

    @handler.event("Bad")
    async def bad(payload: dict) -> None:
        raise RuntimeError("boom")

    app = traced_app(provider, handler, error_policy=ErrorPolicy(retries=1, backoff_ms=0, on_failure="skip"))
    async with TestClient(app) as client:
        await client.send_event("orders", {}, "Bad", headers={"traceparent": TRACEPARENT.encode()})
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.context.trace_id == TRACE_ID
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "RuntimeError: boom"
        assert [e.name for e in span.events] == ["exception"]
    assert spans[1].attributes is not None and spans[1].attributes["evkafka.attempt"] == 2


async def test_the_error_policy_logs_a_failed_record_in_its_trace() -> None:
    seen: list[int] = []

    class CurrentTrace(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(trace.get_current_span().get_span_context().trace_id)

    handler = Handler()

    @handler.event("Bad")
    async def bad(payload: dict) -> None:
        raise RuntimeError("boom")

    app = traced_app(
        trace.NoOpTracerProvider(),  # type: ignore[arg-type]
        handler,
        error_policy=ErrorPolicy(retries=0, on_failure="skip"),
    )
    errors = logging.getLogger("evkafka.errors")
    current = CurrentTrace()
    errors.addHandler(current)
    try:
        async with TestClient(app) as client:
            headers = {"traceparent": TRACEPARENT.encode()}
            await client.send_event("orders", {}, "Bad", headers=headers)
    finally:
        errors.removeHandler(current)
    assert seen and set(seen) == {TRACE_ID}


async def test_tombstone_is_marked(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    handler = Handler()

    @handler.event("Gone")
    async def gone(payload: dict | None) -> None:
        pass

    async with TestClient(traced_app(provider, handler)) as client:
        await client.send_event("orders", None, "Gone", key=b"k")
    span = only(exporter.get_finished_spans(), SpanKind.CONSUMER)
    assert span.attributes is not None
    assert span.attributes[semconv.MESSAGING_KAFKA_MESSAGE_TOMBSTONE] is True


async def test_a_malformed_traceparent_starts_a_new_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    layer = TracingMiddleware(_noop, tracer_provider=provider)
    await layer(Message("orders", 0, 0, None, b"{}", (("traceparent", b"garbage"),), 0))
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.context.trace_id != 0


async def _noop(message: Message) -> None:
    return None


async def context_inside(layer: TracingMiddleware, headers: Headers) -> Context:
    """The context current inside `layer` while it handles a record with `headers` (in a
    task of its own, as in a partition worker: the layer leaves the record's context current)."""
    seen: list[Context] = []

    async def inner(message: Message) -> None:
        seen.append(otel_context.get_current())

    layer.app = inner
    await asyncio.ensure_future(layer(Message("orders", 0, 0, None, b"{}", headers, 0)))
    [context] = seen
    return context


async def test_send_outside_any_span_still_gets_a_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sent: list[Outgoing] = []

    async def record(outgoing: Outgoing) -> None:
        sent.append(outgoing)

    chain = build_publish_chain(
        [Middleware(PublishTracingMiddleware, tracer_provider=provider)], record
    )
    await chain(Outgoing("out", "E", {}, key=b"k", partition=1))
    [span] = exporter.get_finished_spans()
    assert span.name == "send out"
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes[semconv.MESSAGING_OPERATION_TYPE] == "send"
    assert span.attributes[semconv.MESSAGING_DESTINATION_PARTITION_ID] == "1"
    assert ids(sent[0].header("traceparent")) == (span.context.trace_id, span.context.span_id)


async def test_failed_send_marks_the_producer_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def refuse(outgoing: Outgoing) -> None:
        raise TypeError("cannot encode")

    chain = build_publish_chain(
        [Middleware(PublishTracingMiddleware, tracer_provider=provider)], refuse
    )
    with pytest.raises(TypeError):
        await chain(Outgoing("out", "E", object()))
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


async def test_without_producer_spans_the_current_context_is_propagated(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sent: list[Outgoing] = []

    async def record(outgoing: Outgoing) -> None:
        sent.append(outgoing)

    publish = build_publish_chain(
        [Middleware(PublishTracingMiddleware, tracer_provider=provider, spans=False)], record
    )

    async def produce_inside(message: Message) -> None:
        await publish(Outgoing("out", "E", {}))

    layer = TracingMiddleware(produce_inside, tracer_provider=provider)
    await layer(Message("orders", 0, 0, None, b"{}", (("traceparent", TRACEPARENT.encode()),), 0))
    [consumer] = exporter.get_finished_spans()
    assert ids(sent[0].header("traceparent")) == (TRACE_ID, consumer.context.span_id)


def test_setter_replaces_an_existing_header_instead_of_adding_a_second() -> None:
    headers = [("a", b"1"), ("traceparent", b"old")]
    HeaderSetter().set(headers, "traceparent", "new")
    HeaderSetter().set(headers, "tracestate", "x=1")
    assert headers == [("a", b"1"), ("traceparent", b"new"), ("tracestate", b"x=1")]


def test_getter_reads_header_names_case_insensitively_and_skips_empty_values() -> None:
    headers = (("TraceParent", b"v1"), ("traceparent", b""), ("other", b"x"))
    getter = HeaderGetter()
    assert getter.get(headers, "traceparent") == ["v1"]
    assert getter.get(headers, "tracestate") is None
    assert getter.keys(headers) == ["TraceParent", "traceparent", "other"]


@pytest.mark.parametrize(
    "headers",
    [
        (("traceparent", TRACEPARENT.encode()),),
        (("Event-Type", b"E"), ("TraceParent", TRACEPARENT.encode())),
        (("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=abc")),
        (("traceparent", TRACEPARENT.encode()), ("baggage", b"user=42")),
        (("traceparent", TRACEPARENT.upper().encode()),),
        (("traceparent", f"00-{0:032x}-{PARENT_ID:016x}-01".encode()),),
        (("traceparent", f"00-{TRACE_ID:032x}-{0:016x}-01".encode()),),
        (("traceparent", f"01-{TRACE_ID:032x}-{PARENT_ID:016x}-00-extra".encode()),),
        (("traceparent", f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01-extra".encode()),),
        (("traceparent", f"ff-{TRACE_ID:032x}-{PARENT_ID:016x}-01".encode()),),
        (("traceparent", b" " + TRACEPARENT.encode()),),
        (("traceparent", b""),),
    ],
)
async def test_extraction_matches_the_opentelemetry_propagator(
    headers: tuple[tuple[str, bytes], ...],
) -> None:
    ours = await context_inside(TracingMiddleware(_noop), headers)
    theirs = get_global_textmap().extract(headers, getter=GETTER)
    assert trace.get_current_span(ours).get_span_context() == (
        trace.get_current_span(theirs).get_span_context()
    )
    assert baggage.get_all(ours) == baggage.get_all(theirs)


async def test_another_propagator_is_always_asked() -> None:
    class OneField(TextMapPropagator):
        def extract(self, carrier, context=None, getter=GETTER):  # type: ignore[no-untyped-def]
            [value] = getter.get(carrier, "x-trace")
            span = trace.NonRecordingSpan(
                trace.SpanContext(int(value), 1, True, trace.TraceFlags(1))
            )
            return trace.set_span_in_context(span, context or Context())

        def inject(self, carrier, context=None, setter=None):  # type: ignore[no-untyped-def]
            pass

        @property
        def fields(self) -> set[str]:
            return {"x-trace", "traceparent"}

    layer = TracingMiddleware(_noop, propagator=OneField())
    assert not layer.w3c
    headers = (("traceparent", TRACEPARENT.encode()), ("x-trace", b"77"))
    context = await context_inside(layer, headers)
    assert trace.get_current_span(context).get_span_context().trace_id == 77
    context = await context_inside(layer, (("other", b"1"),))
    assert trace.get_current_span(context) is trace.INVALID_SPAN


async def test_a_record_without_context_starts_a_new_trace_even_inside_a_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    layer = TracingMiddleware(_noop, tracer_provider=provider)
    outer = provider.get_tracer("test").start_span("app startup")
    with trace.use_span(outer, end_on_exit=True):
        await layer(Message("orders", 0, 0, None, b"{}", (("Event-Type", b"E"),), 0))
        await layer(Message("orders", 0, 1, None, b"{}", (), 0))
        await layer(Message("orders", 0, 2, None, b"{}", (("traceparent", b"bad"),), 0))
    consumer_spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(consumer_spans) == 3
    for span in consumer_spans:
        assert span.parent is None
        assert span.context.trace_id != outer.get_span_context().trace_id


async def test_without_an_sdk_the_incoming_trace_is_carried_on_without_spans() -> None:
    noop = trace.NoOpTracerProvider()
    assert not TracingMiddleware(_noop, tracer_provider=noop).recording
    async with TestClient(pong_app(noop)) as client:  # type: ignore[arg-type]
        await client.send_event("orders", {}, "Ping", headers={"traceparent": TRACEPARENT.encode()})
    [pong] = client.sent_events("Pong")
    assert ids(pong.header("traceparent")) == (TRACE_ID, PARENT_ID)


UNSAMPLED = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00"


async def test_an_unsampled_record_under_the_default_sampler_gets_no_span_but_carries_its_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = pong_app(provider)
    async with TestClient(app) as client:
        await client.send_event("orders", {}, "Ping", headers={"traceparent": UNSAMPLED.encode()})
        await client.send_event("orders", {}, "Ping", headers={"traceparent": TRACEPARENT.encode()})
    # Only the sampled record's spans (consumer and producer) are recorded.
    assert sorted(s.kind.name for s in exporter.get_finished_spans()) == ["CONSUMER", "PRODUCER"]
    unsampled, sampled = client.sent_events("Pong")
    _, trace_id, _, flags = (unsampled.header("traceparent") or b"").decode().split("-")
    assert (int(trace_id, 16), flags) == (TRACE_ID, "00")  # the trace goes on, unsampled
    assert ids(sampled.header("traceparent"))[0] == TRACE_ID


async def test_a_sampler_that_records_unsampled_parents_still_gets_its_spans(
    exporter: InMemorySpanExporter,
) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert not TracingMiddleware(_noop, tracer_provider=provider).drops_unsampled
    handler = Handler()

    @handler.event("Ping")
    async def ping(payload: dict) -> None:
        pass

    async with TestClient(traced_app(provider, handler)) as client:
        await client.send_event("orders", {}, "Ping", headers={"traceparent": UNSAMPLED.encode()})
    span = only(exporter.get_finished_spans(), SpanKind.CONSUMER)
    assert span.context.trace_id == TRACE_ID


async def test_a_lone_traceparent_is_parsed_only_when_asked_for() -> None:
    headers = (("traceparent", TRACEPARENT.encode()),)
    context = await context_inside(TracingMiddleware(_noop), headers)
    parent = trace.get_current_span(context)
    assert isinstance(parent, RemoteParent)
    assert parent._traceparent is not None  # not parsed yet
    assert parent.get_span_context().trace_id == TRACE_ID
    assert parent._traceparent is None
    assert parent.get_span_context().span_id == PARENT_ID


@pytest.mark.parametrize(
    ("traceparent", "unsampled"),
    [
        (UNSAMPLED, True),
        (TRACEPARENT, False),
        (f"00-{0:032x}-{PARENT_ID:016x}-00", False),  # invalid: not a parent at all
        (f"00-{TRACE_ID:032x}-{0:016x}-00", False),
        (f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-02", True),  # random-trace-id flag only
        (f"01-{TRACE_ID:032x}-{PARENT_ID:016x}-00-extra", True),  # a later version
        ("garbage", False),
    ],
)
async def test_an_unsampled_parent_is_recognised_as_the_parsed_context_would_say(
    traceparent: str, unsampled: bool
) -> None:
    headers = (("traceparent", traceparent.encode()),)
    span = trace.get_current_span(await context_inside(TracingMiddleware(_noop), headers))
    assert isinstance(span, RemoteParent)
    assert span.unsampled() is unsampled
    parsed = span.get_span_context()
    assert unsampled is (parsed.is_valid and not parsed.trace_flags.sampled)


@pytest.mark.parametrize("sdk", [False, True])
async def test_the_record_context_is_current_while_it_is_handled_and_until_the_next_record(
    sdk: bool, provider: TracerProvider
) -> None:
    seen: list[trace.SpanContext] = []

    async def inner(message: Message) -> None:
        seen.append(trace.get_current_span().get_span_context())

    layer = TracingMiddleware(inner, tracer_provider=provider if sdk else trace.NoOpTracerProvider())

    async def worker() -> list[trace.SpanContext]:
        after = []
        for headers in (
            (("traceparent", TRACEPARENT.encode()),),
            (("traceparent", UNSAMPLED.encode()),),
            (("Event-Type", b"E"),),  # no trace context: a new trace, not its predecessor's
        ):
            await layer(Message("orders", 0, 0, None, b"{}", headers, 0))
            after.append(trace.get_current_span().get_span_context())
        return after

    before = otel_context.get_current()
    after = await asyncio.create_task(worker())
    assert otel_context.get_current() is before
    assert after == seen
    assert [c.trace_id for c in seen[:2]] == [TRACE_ID, TRACE_ID]
    assert [c.trace_flags.sampled for c in seen[:2]] == [True, False]
    assert seen[2].trace_id != TRACE_ID
    assert seen[2].is_valid is sdk  # the SDK samples a new root; without it, no span at all


async def test_the_record_context_stays_current_when_the_inner_layer_raises() -> None:
    async def failing(message: Message) -> None:
        raise RuntimeError("boom")

    layer = TracingMiddleware(failing, tracer_provider=trace.NoOpTracerProvider())

    async def worker() -> int:
        headers = (("traceparent", TRACEPARENT.encode()),)
        with pytest.raises(RuntimeError):
            await layer(Message("orders", 0, 0, None, b"{}", headers, 0))
        # What the error policy outside sees: its log lines and dead letters join the trace.
        return trace.get_current_span().get_span_context().trace_id

    assert await asyncio.create_task(worker()) == TRACE_ID


async def test_the_test_client_keeps_the_record_context_out_of_the_test(
    provider: TracerProvider,
) -> None:
    before = otel_context.get_current()
    async with TestClient(pong_app(provider)) as client:  # type: ignore[arg-type]
        await client.send_event("orders", {}, "Ping", headers={"traceparent": TRACEPARENT.encode()})
        assert otel_context.get_current() is before
    assert len(client.sent_events("Pong")) == 1


async def test_header_names_are_matched_whatever_their_case_and_remembered() -> None:
    layer = TracingMiddleware(_noop)
    for name in ("traceparent", "TraceParent", "TRACEPARENT"):
        context = await context_inside(layer, (("Event-Type", b"E"), (name, TRACEPARENT.encode())))
        assert trace.get_current_span(context).get_span_context().trace_id == TRACE_ID
    assert layer._names == {
        "Event-Type": "",
        "traceparent": "traceparent",
        "TraceParent": "traceparent",
        "TRACEPARENT": "traceparent",
    }


async def test_header_names_remembered_are_bounded() -> None:
    layer = TracingMiddleware(_noop)
    for i in range(MAX_HEADER_NAMES + 50):
        await context_inside(layer, ((f"x-{i}", b"1"),))
    assert len(layer._names) == MAX_HEADER_NAMES
    context = await context_inside(layer, (("x-9999", b"1"),))
    assert trace.get_current_span(context) is trace.INVALID_SPAN
