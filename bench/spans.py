"""OpenTelemetry SDK set-ups for the tracing benchmarks: real span processing, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler


class DropSpans(SpanExporter):
    """An exporter that only counts: the cost measured is evkafka's and the SDK's, not I/O."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def sdk_provider(record_all: bool = False, record_none: bool = False) -> TracerProvider:
    """An SDK provider exporting in batches: recording every span, none (the SDK installed,
    every parent's decision overridden to not sampled), or following the upstream sampling
    decision in the traceparent (ParentBased, the SDK default)."""
    sampler: Sampler = ParentBased(ALWAYS_ON)
    if record_all:
        sampler = ALWAYS_ON
    elif record_none:
        sampler = ParentBased(ALWAYS_OFF, remote_parent_sampled=ALWAYS_OFF)
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(DropSpans(), max_queue_size=65536))
    return provider
