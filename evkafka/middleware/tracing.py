"""OpenTelemetry tracing: a consumer span per message, trace context carried in headers.

    app = EVKafkaApp(config, middleware=[Middleware(TracingMiddleware)])
    app.add_producer(config, sender, middleware=[Middleware(PublishTracingMiddleware)])

The inbound layer continues the trace whose context (W3C `traceparent`, by default) the
record's headers carry; the publish layer writes the current context into the headers of
every event it sends, so an event produced inside an endpoint carries the trace on.
Attributes follow the OpenTelemetry messaging semantic conventions. Needs the `tracing`
extra (`pip install evkafka[tracing]`); without an SDK configured the spans are no-ops.

Cost: a recorded span per message is the price of per-message tracing: the OpenTelemetry
SDK spends more on one than evkafka spends on the rest of a message, so on a hot topic sample
at the source. With the SDK's default ParentBased sampler a record whose traceparent is not
sampled gets no span at all (the SDK would drop it), only its context; and the traceparent
is parsed only when something needs it (a child span, an injection into an outgoing event).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from evkafka.message import Headers, Message
from evkafka.outgoing import Outgoing, OutHeaders
from evkafka.types import MessageApp

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.propagate import get_global_textmap
    from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
    from opentelemetry.trace import (
        INVALID_SPAN_CONTEXT,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TracerProvider,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "evkafka.middleware.tracing needs opentelemetry-api: pip install 'evkafka[tracing]'"
    ) from exc

if TYPE_CHECKING:
    from evkafka.middleware.publish import PublishApp

#: Instrumentation scope of every span evkafka starts.
TRACER_NAME = "evkafka"

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
GROUP = "messaging.consumer.group.name"
OFFSET = "messaging.kafka.offset"
KEY = "messaging.kafka.message.key"
TOMBSTONE = "messaging.kafka.message.tombstone"
EVENT_TYPE = "evkafka.event_type"
CONSUMER = "evkafka.consumer"
ATTEMPT = "evkafka.attempt"


class HeaderGetter(Getter[Headers]):
    """Reads propagation fields from Kafka record headers ((str, bytes) pairs)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode("utf-8", "replace") for k, v in carrier if k.lower() == key and v]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class HeaderSetter(Setter[OutHeaders]):
    """Writes propagation fields into outgoing headers, replacing one already there."""

    def set(self, carrier: OutHeaders, key: str, value: str) -> None:
        encoded = value.encode("utf-8")
        for i, (name, _) in enumerate(carrier):
            if name == key:
                carrier[i] = (key, encoded)
                return
        carrier.append((key, encoded))


#: Header names of the W3C trace context and baggage propagators.
W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
#: A version-00 traceparent exactly as W3C writes it (anything else takes the generic path).
_TRACEPARENT_V00 = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
#: A version-00 traceparent with valid (non-zero) ids and the sampled flag off.
_UNSAMPLED_V00 = re.compile(rb"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]")
#: Distinct header names a layer remembers the lowercased field of.
MAX_HEADER_NAMES = 256

#: The two trace-flags values senders write, built once.
_FLAGS = {b"00": TraceFlags(0), b"01": TraceFlags(1)}

GETTER = HeaderGetter()
#: The empty context: a record without trace context starts a new trace, never a child of
#: whatever span happened to be current where the consumer was started.
ROOT = Context()
SETTER = HeaderSetter()


def _span_key() -> str | None:
    """The context key OpenTelemetry keeps the current span under, learned through its API."""
    keys = list(trace.set_span_in_context(trace.INVALID_SPAN, Context()))
    return keys[0] if len(keys) == 1 else None


_SPAN_KEY = _span_key()


def _context_of(span: trace.Span) -> Context:
    """A context holding only `span` (what `set_span_in_context(span, ROOT)` returns, built
    in one step: the layer does this for every record)."""
    if _SPAN_KEY is None:  # pragma: no cover - an OpenTelemetry API that stores more
        return trace.set_span_in_context(span, ROOT)
    return Context({_SPAN_KEY: span})


def _tracer(provider: TracerProvider | None) -> trace.Tracer:
    from evkafka import __version__

    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)


def _has_sdk(provider: TracerProvider | None) -> bool:
    """Whether spans can record: a provider was given, or an SDK one is installed globally."""
    if provider is not None:
        return not isinstance(provider, trace.NoOpTracerProvider)
    current = trace.get_tracer_provider()
    return not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class RemoteParent(NonRecordingSpan):
    """The upstream span a record's `traceparent` names, parsed the first time anything asks
    for it (a publish layer injecting it, the SDK starting a child span): most records never
    need it, and parsing costs more than the rest of the tracing layer.

    The tracing layer makes one per record and sets its slots itself: no Python `__init__`.
    """

    __slots__ = ("_context", "_propagator", "_traceparent")
    if TYPE_CHECKING:

        def __init__(self) -> None: ...

    else:
        __init__ = object.__init__  # no Python frame per record

    _context: SpanContext
    _traceparent: bytes | None
    _propagator: TextMapPropagator

    def get_span_context(self) -> SpanContext:
        if self._traceparent is not None:
            self._context = self._parse(self._traceparent)
            self._traceparent = None
            del self._propagator
        return self._context

    def __repr__(self) -> str:
        return f"RemoteParent({self.get_span_context()!r})"

    def unsampled(self) -> bool:
        """Whether this is a valid parent with the sampled flag off, without building its
        context when the traceparent is a plain version-00 one."""
        if self._traceparent is not None and _UNSAMPLED_V00.fullmatch(self._traceparent):
            return True
        context = self.get_span_context()
        return context.is_valid and not context.trace_flags.sampled

    def _parse(self, traceparent: bytes) -> SpanContext:
        match = _TRACEPARENT_V00.fullmatch(traceparent)
        if match is None:  # another version or a malformed value: as the propagator reads it
            # It was the record's only propagation header: the propagator reads the same.
            carrier = (("traceparent", traceparent),)
            context = self._propagator.extract(carrier, ROOT, GETTER)
            return trace.get_current_span(context).get_span_context()
        trace_id, span_id = int(match[1], 16), int(match[2], 16)
        if not trace_id or not span_id:
            return INVALID_SPAN_CONTEXT
        flags = _FLAGS.get(match[3])
        if flags is None:
            flags = TraceFlags(int(match[3], 16))
        return SpanContext(trace_id, span_id, True, flags)


def _context_setter() -> Callable[[Context], object]:
    """What makes a context current: with OpenTelemetry's default runtime context (a
    ContextVar) the variable's own `set`, which `context.attach` calls through two Python
    frames; with any other runtime context, `attach` itself."""
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:  # pragma: no cover - an API without the contextvars runtime
        return otel_context.attach
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
        return var.set
    return otel_context.attach  # pragma: no cover - another runtime


def _unsampled(span: trace.Span) -> bool:
    if isinstance(span, RemoteParent):
        return span.unsampled()
    context = span.get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def _drops_unsampled_parents(provider: TracerProvider | None) -> bool:
    """Whether the SDK sampler is ParentBased with its default ALWAYS_OFF for parents (remote
    and local) that are not sampled. Read from SDK attributes; should they change, spans are
    simply started as before."""
    try:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
    except ImportError:  # pragma: no cover - an SDK other than the reference one
        return False
    sampler = getattr(provider or trace.get_tracer_provider(), "sampler", None)
    return (
        type(sampler) is ParentBased
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
    )


def _record_failure(span: trace.Span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _key_text(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


class TracingMiddleware:
    """Runs the layers inside it in a CONSUMER span, child of the context in the headers.

    One span per processing attempt (a retried message gets one per attempt, with
    `evkafka.attempt`); an exception marks the span as an error. `tracer_provider` and
    `propagator` default to the global ones at the time the chain is built (app start):
    with no SDK installed by then, no spans are started and the layer only makes the
    incoming trace context current, so events produced inside the endpoint carry it on.

    The record's context (its span, or the upstream one) stays current in the partition
    worker after the layer returns, until the next record replaces it, as OpenTelemetry's
    kafka-python instrumentation does: the error policy's log lines for a failed record run
    in its trace, and a record costs no frame of its own here. A record without
    trace context gets an empty one, never its predecessor's. Put this layer first, or right
    after the metrics layer: layers outside it see the previous record's context.
    """

    def __init__(
        self,
        app: MessageApp,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.app = app
        self.tracer = _tracer(tracer_provider)
        self.propagator = propagator or get_global_textmap()
        #: Header names the propagator reads; a record with none of them starts a new trace.
        self.fields = frozenset(f.lower() for f in self.propagator.fields)
        #: Only W3C trace context and baggage are read: a lone traceparent may be parsed here.
        self.w3c = "traceparent" in self.fields and self.fields <= W3C_FIELDS
        self.recording = _has_sdk(tracer_provider)
        #: No span is ever started: records only get their context made current.
        self.quiet = not self.recording
        #: The sampler drops every span whose parent is not sampled (the SDK default,
        #: ParentBased): such a record gets no span at all, only its context made current.
        self.drops_unsampled = self.recording and _drops_unsampled_parents(tracer_provider)
        #: Header name as sent -> the propagation field it is (lowercased), "" for none.
        self._names: dict[str, str] = {}
        self._set = _context_setter()

    def __call__(self, message: Message) -> Awaitable[None]:
        # A lone W3C traceparent (the common case) becomes a RemoteParent, parsed only when
        # something asks for it; any other propagation header goes through the propagator.
        traceparent = None
        names = self._names
        for name, value in message.headers:
            field = names.get(name)
            if field is None:
                field = self._learn(name)
            if field:
                if traceparent is not None or field != "traceparent" or not self.w3c:
                    return self._propagated(message)
                traceparent = value
        if traceparent is None:
            parent = ROOT
            bare = self.quiet
        else:
            span = RemoteParent()
            span._traceparent, span._propagator = traceparent, self.propagator
            parent = _context_of(span) if _SPAN_KEY is None else Context({_SPAN_KEY: span})
            # A plain unsampled traceparent: the sampler would drop the span; decided
            # without parsing the parent.
            bare = self.quiet or (
                self.drops_unsampled and _UNSAMPLED_V00.fullmatch(traceparent) is not None
            )
        if bare:
            self._set(parent)
            return self.app(message)
        return self._traced(message, parent)

    def _propagated(self, message: Message) -> Awaitable[None]:
        """A record whose headers the propagator reads (several fields, or another format)."""
        parent = self.propagator.extract(message.headers, ROOT, GETTER)
        if self.quiet or (self.drops_unsampled and _unsampled(trace.get_current_span(parent))):
            self._set(parent)
            return self.app(message)
        return self._traced(message, parent)

    def _learn(self, name: str) -> str:
        lowered = name.lower()
        field = lowered if lowered in self.fields else ""
        if len(self._names) < MAX_HEADER_NAMES:
            self._names[name] = field
        return field

    async def _traced(self, message: Message, parent: Context) -> None:
        attributes: dict[str, Any] = {
            SYSTEM: "kafka",
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            DESTINATION: message.topic,
            PARTITION: str(message.partition),
            OFFSET: message.offset,
        }
        if message.group_id is not None:
            attributes[GROUP] = message.group_id
        if message.consumer_name is not None:
            attributes[CONSUMER] = message.consumer_name
        if message.key is not None:
            attributes[KEY] = _key_text(message.key)
        if message.value is None:
            attributes[TOMBSTONE] = True
        if message.attempt > 1:
            attributes[ATTEMPT] = message.attempt
        span = self.tracer.start_span(
            f"process {message.topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        self._set(trace.set_span_in_context(span, parent))
        try:
            await self.app(message)
        except Exception as exc:
            _record_failure(span, exc)
            raise
        finally:
            if message.event_type is not None:
                span.set_attribute(EVENT_TYPE, message.event_type)
            span.end()


class PublishTracingMiddleware:
    """Writes the trace context into each outgoing event's headers.

    With `spans=True` (default) each send gets a PRODUCER span, child of the current one,
    and that span's context is what goes into the headers; `spans=False` only propagates
    the current context (cheaper).
    """

    def __init__(
        self,
        app: PublishApp,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        spans: bool = True,
    ) -> None:
        self.app = app
        self.tracer = _tracer(tracer_provider)
        self.propagator = propagator or get_global_textmap()
        self.spans = spans
        #: As on the inbound side: no span where the sampler would drop it anyway.
        self.drops_unsampled = _has_sdk(tracer_provider) and _drops_unsampled_parents(
            tracer_provider
        )

    async def __call__(self, outgoing: Outgoing) -> None:
        if not self.spans or (self.drops_unsampled and _unsampled(trace.get_current_span())):
            self.propagator.inject(outgoing.headers, setter=SETTER)
            await self.app(outgoing)
            return
        attributes: dict[str, Any] = {
            SYSTEM: "kafka",
            OPERATION_TYPE: "send",
            OPERATION_NAME: "send",
            DESTINATION: outgoing.topic,
            EVENT_TYPE: outgoing.event_type,
        }
        if outgoing.partition is not None:
            attributes[PARTITION] = str(outgoing.partition)
        if outgoing.key is not None:
            attributes[KEY] = _key_text(outgoing.key)
        span = self.tracer.start_span(
            f"send {outgoing.topic}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        self.propagator.inject(outgoing.headers, trace.set_span_in_context(span), setter=SETTER)
        try:
            await self.app(outgoing)
        except Exception as exc:
            _record_failure(span, exc)
            raise
        finally:
            span.end()
