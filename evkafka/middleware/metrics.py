"""Prometheus metrics: inbound and publish middleware, commit and lag figures, `/metrics`.

    metrics = Metrics()                        # a private CollectorRegistry
    app = EVKafkaApp(config, middleware=[metrics.middleware()])
    app.add_producer(config, sender, middleware=[metrics.publish_middleware()])
    metrics.instrument(app)                    # commits and lag; `/metrics` on the app's server

The middleware only adds to plain integers on the event loop (a dict lookup and a few
additions per message); prometheus-client turns them into samples when scraped. Commit
counts and per-partition lag are read from the running consumers at scrape time, so they
cost nothing per message. Needs the `metrics` extra (`pip install evkafka[metrics]`).
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import pairwise
from time import perf_counter
from typing import TYPE_CHECKING, Any

from evkafka.errors import ConfigError
from evkafka.message import Message
from evkafka.outgoing import Outgoing
from evkafka.types import MessageApp

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "evkafka.middleware.metrics needs prometheus-client: pip install 'evkafka[metrics]'"
    ) from exc

if TYPE_CHECKING:
    from aiohttp import web

    from evkafka.consumer import Consumer
    from evkafka.middleware import Middleware
    from evkafka.middleware.errors import ErrorEvent
    from evkafka.middleware.publish import PublishApp

#: Endpoint duration buckets in seconds: fine below 10 ms, where most endpoints live.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: Distinct unregistered event types (no endpoint) given their own label; the rest share
#: OTHER_EVENT_TYPE, so junk headers cannot grow the number of series without bound.
MAX_UNMATCHED_TYPES = 50
OTHER_EVENT_TYPE = "<other>"

InboundKey = tuple[str, str, str]
OutboundKey = tuple[str, str]

INBOUND_LABELS = ["consumer", "topic", "event_type"]
PARTITION_LABELS = ["consumer", "topic", "partition"]


class InboundCounts:
    """What happened to the messages of one (consumer, topic, event type).

    A message handled at its first attempt adds to its duration bucket and sum only:
    `handled` and `received` are derived from the counts the rarer outcomes keep.
    """

    __slots__ = (
        "bounds",
        "buckets",
        "dead_lettered",
        "discarded",
        "duration_sum",
        "failed",
        "failed_first",
        "failed_timed",
        "fast",
        "later",
        "retried",
        "skipped",
    )

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        #: Timed attempts no longer than the first bucket bound (the common case).
        self.fast = 0
        #: Other timed attempts by bucket: one count per bound, the last one for +Inf.
        self.buckets = [0] * (len(bounds) + 1)
        self.duration_sum = 0.0
        self.skipped = 0
        #: Handled or skipped at a later attempt than the first (after a retry).
        self.later = 0
        #: Failed attempts by exception class name; those at a first attempt; those timed.
        self.failed: dict[str, int] = {}
        self.failed_first = 0
        self.failed_timed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.discarded = 0

    def time(self, elapsed: float) -> None:
        """Count an attempt of `elapsed` seconds in the histogram."""
        if elapsed <= self.bounds[0]:
            self.fast += 1
        else:
            self.buckets[bisect_left(self.bounds, elapsed)] += 1
        self.duration_sum += elapsed

    def cumulative(self) -> list[int]:
        """The histogram's cumulative bucket counts, the last one for +Inf."""
        counts, running = [], self.fast
        for count in self.buckets:
            running += count
            counts.append(running)
        return counts

    @property
    def handled(self) -> int:
        return self.fast + sum(self.buckets) - self.failed_timed

    @property
    def received(self) -> int:
        """Messages at their first attempt: a retried one counts once."""
        return self.handled + self.skipped - self.later + self.failed_first


class OutboundCounts:
    """Events of one (topic, event type) handed to a producer, and those that failed."""

    __slots__ = ("failed", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0


def _label(value: str | None) -> str:
    return "" if value is None else value


def _check_buckets(buckets: Any) -> tuple[float, ...]:
    try:
        bounds = tuple(float(b) for b in buckets)
    except (TypeError, ValueError):
        raise ConfigError(f"buckets must be a sequence of numbers, not {buckets!r}") from None
    if bounds and bounds[-1] == math.inf:
        bounds = bounds[:-1]
    if not bounds:
        raise ConfigError("buckets must hold at least one finite upper bound")
    if any(not math.isfinite(b) or b <= 0 for b in bounds):
        raise ConfigError(f"bucket bounds must be positive finite seconds, not {buckets!r}")
    if any(a >= b for a, b in pairwise(bounds)):
        raise ConfigError(f"bucket bounds must be strictly increasing, not {buckets!r}")
    return bounds


class Metrics:
    """One app's metrics: the counts the middleware keeps and the registry that exposes them.

    `registry` defaults to a private CollectorRegistry, so several apps (or tests) in one
    process never collide; pass `prometheus_client.REGISTRY` to share the global one.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise ConfigError(f"registry must be a prometheus CollectorRegistry, not {registry!r}")
        self.bounds = _check_buckets(buckets)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.inbound: dict[InboundKey, InboundCounts] = {}
        self.outbound: dict[OutboundKey, OutboundCounts] = {}
        self._unmatched = 0
        self._inbound_layers: weakref.WeakSet[MetricsMiddleware] = weakref.WeakSet()
        self._publish_layers: weakref.WeakSet[PublishMetricsMiddleware] = weakref.WeakSet()
        self._consumer_sources: list[Callable[[], Iterable[Consumer]]] = []
        self._apps: list[Any] = []
        #: Registered in `registry`; unregister it to stop exposing these metrics.
        self.collector = _Collector(self)
        self.registry.register(self.collector)

    # -- declaring the layers -------------------------------------------

    def middleware(self) -> Middleware:
        """The inbound layer, for `middleware=[...]` of the app or a consumer."""
        from evkafka.middleware import Middleware

        return Middleware(MetricsMiddleware, metrics=self)

    def publish_middleware(self) -> Middleware:
        """The publish layer, for `add_producer(..., middleware=[...])` or EVKafkaProducer."""
        from evkafka.middleware import Middleware

        return Middleware(PublishMetricsMiddleware, metrics=self)

    def instrument(self, app: Any) -> None:
        """Report `app`'s running consumers (commits, lag) and serve `/metrics` on its server."""
        add_http_routes = getattr(app, "add_http_routes", None)
        if add_http_routes is None:
            raise ConfigError(
                f"{type(app).__name__} has no HTTP server to serve /metrics on; "
                f"call metrics.add_routes(web_app) on an aiohttp application instead"
            )
        if any(seen is app for seen in self._apps):
            raise ConfigError("this app is already instrumented by these metrics")
        self._apps.append(app)
        self.watch_consumers(lambda: list(getattr(app, "_running", ())))
        add_http_routes(self.add_routes)

    def watch_consumers(self, consumers: Callable[[], Iterable[Consumer]]) -> None:
        """Read commit counts and lag from the consumers `consumers()` returns at scrape time."""
        self._consumer_sources.append(consumers)

    # -- exposing ---------------------------------------------------------

    def add_routes(self, web_app: web.Application) -> None:
        """Serve the exposition at GET `/metrics` on an aiohttp application."""
        web_app.router.add_get("/metrics", self._serve)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format, settling finished deliveries first."""
        for layer in list(self._publish_layers):
            layer.settle()
        return generate_latest(self.registry)

    async def _serve(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- bookkeeping (slow paths of the middleware) ------------------------

    def inbound_counts(self, message: Message) -> InboundCounts:
        """The counts for `message`'s (consumer, topic, event type), created on first use."""
        key = (_label(message.consumer_name), message.topic, _label(message.event_type))
        counts = self.inbound.get(key)
        if counts is not None:
            return counts
        if message.endpoint is None:  # an event type no endpoint registered: cap the series
            if self._unmatched >= MAX_UNMATCHED_TYPES:
                key = (key[0], key[1], OTHER_EVENT_TYPE)
                counts = self.inbound.get(key)
                if counts is not None:
                    return counts
            else:
                self._unmatched += 1
        counts = self.inbound[key] = InboundCounts(self.bounds)
        return counts

    def outbound_counts(self, outgoing: Outgoing) -> OutboundCounts:
        """The counts for `outgoing`'s (topic, event type), created on first use."""
        key = (outgoing.topic, outgoing.event_type)
        counts = self.outbound.get(key)
        if counts is None:
            counts = self.outbound[key] = OutboundCounts()
        return counts

    def in_flight(self) -> dict[str, int]:
        """Messages inside the inbound layers right now, by consumer."""
        totals: dict[str, int] = {}
        for layer in list(self._inbound_layers):
            if layer.consumer is not None:
                totals[layer.consumer] = totals.get(layer.consumer, 0) + layer.in_flight
        return totals

    def consumers(self) -> list[Consumer]:
        """The running consumers of every instrumented app, for commit and lag figures."""
        return [c for source in self._consumer_sources for c in source()]


class MetricsMiddleware:
    """Counts received, handled, skipped and failed messages and times the layers inside.

    Place it in `middleware=[...]`, first: there the partition worker runs it inline (a
    `TimedLayer`). The error policy outside reports retries, dead-letters and discards to
    `on_error_event`. Durations cover what is inside this layer (event type, decoding, the
    endpoint). A retried message is received once, and each failed attempt counts as a
    failure.
    """

    #: The partition worker may run the layers inside and report to finished/failed.
    times_inner_layers = True

    def __init__(self, app: MessageApp, metrics: Metrics | None = None) -> None:
        if not isinstance(metrics, Metrics):
            raise ConfigError(
                "MetricsMiddleware needs metrics=Metrics(): declare it with "
                "`metrics.middleware()` so every consumer of the app shares one registry"
            )
        self.app = app
        self.metrics = metrics
        self.bounds = metrics.bounds
        self.first_bound = metrics.bounds[0]
        self.in_flight = 0
        #: The consumer this layer serves, learned from its first message.
        self.consumer: str | None = None
        #: topic -> event type -> counts of this layer's consumer (the per-message lookup).
        self._counts: dict[str, dict[str | None, InboundCounts]] = {}
        #: The series the last message counted in, and its topic and event type.
        self._last = InboundCounts(metrics.bounds)
        self._last_topic: str | None = None
        self._last_type: str | None = None
        metrics._inbound_layers.add(self)

    async def __call__(self, message: Message) -> None:
        self.in_flight += 1
        if self.consumer is None:
            self.consumer = _label(message.consumer_name)
        start = perf_counter()
        try:
            await self.app(message)
        except Exception as exc:
            self.failed(message, exc, perf_counter() - start)
            raise
        except BaseException:
            self.in_flight -= 1
            raise
        self.finished(message, perf_counter() - start)

    def finished(self, message: Message, seconds: float) -> None:
        """Count a message the layers inside returned from after `seconds`."""
        self.in_flight -= 1
        # The series of the last message first (identity: the event type conventions and
        # aiokafka hand out the same str objects), then the per-topic lookup.
        if message.event_type is self._last_type and message.topic is self._last_topic:
            counts = self._last
        else:
            counts = self._find(message)
        if message.attempt != 1:
            counts.later += 1
        if message.endpoint is None:
            counts.skipped += 1
            return
        # InboundCounts.time, inline: this runs for every message.
        if seconds <= self.first_bound:
            counts.fast += 1
        else:
            counts.buckets[bisect_left(self.bounds, seconds)] += 1
        counts.duration_sum += seconds

    def failed(self, message: Message, error: Exception, seconds: float) -> None:
        """Count a failed attempt, by the class of `error`."""
        self.in_flight -= 1
        counts = self._lookup(message)
        if message.attempt == 1:
            counts.failed_first += 1
        name = type(error).__name__
        counts.failed[name] = counts.failed.get(name, 0) + 1
        if message.endpoint is not None:
            counts.failed_timed += 1
            counts.time(seconds)

    def _find(self, message: Message) -> InboundCounts:
        by_type = self._counts.get(message.topic)
        counts = None if by_type is None else by_type.get(message.event_type)
        if counts is None:
            return self._lookup(message)
        self._last, self._last_topic, self._last_type = counts, message.topic, message.event_type
        return counts

    def _lookup(self, message: Message) -> InboundCounts:
        """The shared counts for `message`, remembered here when it is this layer's consumer."""
        consumer = _label(message.consumer_name)
        if self.consumer is None:
            self.consumer = consumer
        counts = self.metrics.inbound_counts(message)
        if consumer == self.consumer:
            key = (consumer, message.topic, _label(message.event_type))
            if self.metrics.inbound.get(key) is counts:  # its own series, not the shared OTHER
                self._counts.setdefault(message.topic, {})[message.event_type] = counts
        return counts

    def on_error_event(self, event: ErrorEvent) -> None:
        """Count the error policy's retries, dead-letters and discards (skip)."""
        counts = self.metrics.inbound_counts(event.message)
        if event.action == "retry":
            counts.retried += 1
        elif event.action == "dead-letter":
            counts.dead_lettered += 1
        elif event.action == "skip":
            counts.discarded += 1


class PublishMetricsMiddleware:
    """Counts events handed to the producer and those whose send or delivery failed.

    Deliveries are checked in send order as later events go out and at each scrape, so
    a send costs an append, not a callback.
    """

    def __init__(self, app: PublishApp, metrics: Metrics | None = None) -> None:
        if not isinstance(metrics, Metrics):
            raise ConfigError(
                "PublishMetricsMiddleware needs metrics=Metrics(): declare it with "
                "`metrics.publish_middleware()`"
            )
        self.app = app
        self.metrics = metrics
        self.outbound = metrics.outbound
        self.pending: deque[tuple[Any, OutboundCounts]] = deque()
        metrics._publish_layers.add(self)

    async def __call__(self, outgoing: Outgoing) -> None:
        try:
            await self.app(outgoing)
        except Exception:
            self.metrics.outbound_counts(outgoing).failed += 1
            raise
        delivery = outgoing.delivery
        if delivery is None:  # an inner layer chose not to send it
            return
        counts = self.outbound.get(
            (outgoing.topic, outgoing.event_type)
        ) or self.metrics.outbound_counts(outgoing)
        counts.sent += 1
        pending = self.pending
        pending.append((delivery, counts))
        if pending[0][0].done():
            self.settle()

    def settle(self) -> None:
        """Count the failures among finished deliveries, oldest first, up to a pending one."""
        pending = self.pending
        while pending and pending[0][0].done():
            delivery, counts = pending.popleft()
            if not delivery.cancelled() and delivery.exception() is not None:
                counts.failed += 1


class _Collector:
    """Turns the counts and the running consumers' state into metric families at scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        self._fill_inbound(families)
        self._fill_outbound(families)
        self._fill_consumers(families)
        return iter(families)

    def _families(self) -> list[Metric]:
        labels = INBOUND_LABELS
        return [
            CounterMetricFamily(
                "evkafka_messages_received",
                "Messages that reached the metrics layer (a retried one counts once).",
                labels=labels,
            ),
            CounterMetricFamily(
                "evkafka_messages_handled", "Messages an endpoint handled.", labels=labels
            ),
            CounterMetricFamily(
                "evkafka_messages_skipped",
                "Messages skipped because no endpoint matches their event type.",
                labels=labels,
            ),
            CounterMetricFamily(
                "evkafka_messages_failed",
                "Processing attempts that raised, by exception class.",
                labels=[*labels, "error"],
            ),
            CounterMetricFamily(
                "evkafka_messages_retried", "Retries the error policy scheduled.", labels=labels
            ),
            CounterMetricFamily(
                "evkafka_messages_dead_lettered",
                "Messages written to a dead-letter topic.",
                labels=labels,
            ),
            CounterMetricFamily(
                "evkafka_messages_discarded",
                "Failed messages the error policy skipped.",
                labels=labels,
            ),
            HistogramMetricFamily(
                "evkafka_endpoint_duration_seconds",
                "Time inside the metrics layer (event type, decoding, endpoint) per attempt.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "evkafka_messages_in_flight",
                "Messages inside the metrics layer now.",
                labels=["consumer"],
            ),
            CounterMetricFamily(
                "evkafka_events_sent",
                "Events handed to a producer.",
                labels=["topic", "event_type"],
            ),
            CounterMetricFamily(
                "evkafka_events_delivery_failed",
                "Events whose send raised or whose delivery the broker did not acknowledge.",
                labels=["topic", "event_type"],
            ),
            CounterMetricFamily(
                "evkafka_commits", "Offset commits that succeeded.", labels=["consumer"]
            ),
            CounterMetricFamily(
                "evkafka_commit_failures", "Offset commits that failed.", labels=["consumer"]
            ),
            SummaryMetricFamily(
                "evkafka_commit_duration_seconds",
                "Time of successful offset commits.",
                labels=["consumer"],
            ),
            GaugeMetricFamily(
                "evkafka_consumer_lag",
                "Records between the committed offset and the high watermark.",
                labels=PARTITION_LABELS,
            ),
            GaugeMetricFamily(
                "evkafka_consumer_processing_lag",
                "Records between the oldest unfinished offset and the high watermark.",
                labels=PARTITION_LABELS,
            ),
            GaugeMetricFamily(
                "evkafka_consumer_buffered",
                "Records fetched and waiting for their partition worker.",
                labels=PARTITION_LABELS,
            ),
        ]

    def _fill_inbound(self, f: list[Any]) -> None:
        bounds = [*(repr(b) for b in self.metrics.bounds), "+Inf"]
        for key, c in list(self.metrics.inbound.items()):
            labels = list(key)
            f[0].add_metric(labels, c.received)
            f[1].add_metric(labels, c.handled)
            f[2].add_metric(labels, c.skipped)
            for error, count in list(c.failed.items()):
                f[3].add_metric([*labels, error], count)
            f[4].add_metric(labels, c.retried)
            f[5].add_metric(labels, c.dead_lettered)
            f[6].add_metric(labels, c.discarded)
            cumulative = list(zip(bounds, c.cumulative(), strict=True))
            f[7].add_metric(labels, cumulative, c.duration_sum)
        for consumer, count in self.metrics.in_flight().items():
            f[8].add_metric([consumer], count)

    def _fill_outbound(self, f: list[Any]) -> None:
        for key, c in list(self.metrics.outbound.items()):
            f[9].add_metric(list(key), c.sent)
            f[10].add_metric(list(key), c.failed)

    def _fill_consumers(self, f: list[Any]) -> None:
        for consumer in self.metrics.consumers():
            name = [consumer.name]
            f[11].add_metric(name, consumer.commits)
            f[12].add_metric(name, getattr(consumer, "commit_failures", 0))
            f[13].add_metric(name, consumer.commits, getattr(consumer, "commit_seconds", 0.0))
            for tp, hw, committed, unfinished, buffered in partition_positions(consumer):
                labels = [consumer.name, tp.topic, str(tp.partition)]
                if committed is not None:
                    f[14].add_metric(labels, max(hw - committed, 0))
                if unfinished is not None:
                    f[15].add_metric(labels, max(hw - unfinished, 0))
                f[16].add_metric(labels, buffered)


def partition_positions(
    consumer: Consumer,
) -> Iterator[tuple[Any, int, int | None, int | None, int]]:
    """(partition, high watermark, committed, oldest unfinished, buffered) per assigned one.

    Partitions without a known high watermark (nothing fetched yet) are left out. A
    partition no record was handed out for since assignment has its committed and
    unfinished position at aiokafka's fetch position.
    """
    kafka = consumer._kafka
    if kafka is None:
        return
    for tp in sorted(kafka.assignment()):
        hw = kafka.highwater(tp)
        if hw is None:
            continue
        worker = consumer.workers.get(tp)
        if worker is not None:
            yield tp, hw, worker.tracker.committed, worker.first_unfinished, worker.buffered
            continue
        position = _fetch_position(kafka, tp)
        yield tp, hw, position, position, 0


def _fetch_position(kafka: Any, tp: Any) -> int | None:
    """aiokafka's next fetch offset for `tp`, read without awaiting (None if unknown)."""
    try:
        state = kafka._subscription.subscription.assignment.state_value(tp)
        return int(state.position) if state.has_valid_position else None
    except (AttributeError, AssertionError):
        return None
