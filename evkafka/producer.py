"""EVKafkaProducer: encodes, labels and sends events through aiokafka; no failure is lost."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from evkafka.codec import JSON, Codec
from evkafka.config import ProducerConfig, aiokafka_producer_kwargs, producer_settings
from evkafka.conventions import EventTypeConvention, HeaderConvention
from evkafka.errors import ConfigError, DeliveryError, EVKafkaError, NotStartedError
from evkafka.middleware import Middleware
from evkafka.middleware.publish import SendLayer, build_publish_chain
from evkafka.outgoing import Outgoing, OutHeaders

logger = logging.getLogger("evkafka.producer")

#: What callers may pass as headers: a mapping or (name, value) pairs; str values become UTF-8.
HeadersArg = Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]]

#: A fire-and-forget delivery awaiting its outcome: (future, topic, event type).
Inflight = tuple["asyncio.Future[Any]", str, str]

#: Failures kept for the next `flush()` report; the count keeps going past this.
MAX_KEPT_FAILURES = 100


class ProducerStartupError(EVKafkaError):
    """The producer could not connect to its bootstrap servers."""


def as_key(key: Any) -> bytes | None:
    """A record key as bytes: bytes pass, str becomes UTF-8, None stays None."""
    if key is None or type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"key must be bytes or str, not {type(key).__name__}")


def as_headers(headers: HeadersArg | None) -> OutHeaders:
    """A fresh header list of (str, bytes) pairs the convention may append to."""
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: OutHeaders = []
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"headers must be a mapping or (name, value) pairs, got {pair!r}"
            ) from None
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, not {type(name).__name__}: {name!r}")
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, bytes):
            raise TypeError(
                f"header {name!r} must have a bytes or str value, not {type(value).__name__}"
            )
        out.append((name, value))
    return out


def describe(exc: BaseException) -> str:
    """`Name: text` once (aiokafka's messages already start with their class name)."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}"


def check_sendable(event_type: str, value: bytes | None, key: bytes | None) -> None:
    """Kafka needs a key or a value: a tombstone (null value) must carry a key."""
    if value is None and key is None:
        raise ValueError(
            f"event {event_type!r} has a null value (tombstone) and no key; "
            f"a tombstone needs a key"
        )


def _check_topic(topic: Any, where: str) -> str | None:
    if topic is None:
        return None
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"{where} must be a non-empty topic name, not {topic!r}")
    return topic


class EVKafkaProducer:
    """`async with EVKafkaProducer(config) as producer: await producer.send_event(...)`.

    Events pass the publish middleware chain (built once here), are encoded by `codec`,
    labelled by `convention` (the `Event-Type` header unless swapped) and sent.
    """

    def __init__(
        self,
        config: ProducerConfig,
        *,
        codec: Codec = JSON,
        convention: EventTypeConvention | None = None,
        middleware: Sequence[Middleware] | None = None,
        name: str = "producer",
    ) -> None:
        self.settings = producer_settings(config)
        self.topic = _check_topic(self.settings.get("topic"), "producer config 'topic'")
        self.name = name
        self.codec = codec
        self.convention: EventTypeConvention = convention or HeaderConvention()
        self.middleware = list(middleware or ())
        #: Fire-and-forget deliveries that failed, over the producer's life.
        self.delivery_failures = 0
        self._send_layer = SendLayer(self._transmit, codec, self.convention)
        self._chain = build_publish_chain(self.middleware, self._send_layer)
        #: Without publish middleware, `send_event` runs the send layer's steps itself.
        self._direct = self._chain is self._send_layer
        self._producer: Any = None
        self._open = False
        self._inflight: deque[Inflight] = deque()
        self._watched: asyncio.Future[Any] | None = None
        self._unreported = 0
        self._failures: list[BaseException] = []

    @property
    def started(self) -> bool:
        return self._open

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Connect to the cluster; a second call is a no-op."""
        if self._open:
            return
        try:
            producer = AIOKafkaProducer(**aiokafka_producer_kwargs(self.settings))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid producer config for {self.name!r}: {exc}") from exc
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise ProducerStartupError(
                f"producer {self.name!r} could not connect to "
                f"{self.settings['bootstrap_servers']!r}: {describe(exc)}"
            ) from exc
        self._producer = producer
        self._open = True

    async def flush(self) -> None:
        """Wait for every sent event; raise DeliveryError for fire-and-forget failures since
        the last flush."""
        if self._producer is not None:
            await self._producer.flush()
        await self._settled()
        self._raise_failures()

    async def stop(self) -> None:
        """Deliver what is pending, disconnect, then report fire-and-forget failures."""
        producer = self._producer
        try:
            if producer is not None:
                await producer.flush()
            await self._settled()
        finally:
            self._open = False
            self._producer = None
            if producer is not None:
                await producer.stop()
                self._settle_done()  # events sent while the flush ran
        self._raise_failures()

    async def __aenter__(self) -> EVKafkaProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        except DeliveryError as err:
            if exc is None:
                raise
            logger.error("%s while leaving producer %r after %r", err, self.name, exc)

    # -- sending ---------------------------------------------------------

    async def send_event(
        self,
        event: Any,
        event_type: str,
        topic: str | None = None,
        key: bytes | str | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: HeadersArg | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one event and return its delivery future without waiting for the broker.

        A failure nobody awaits is logged, counted and raised by the next `flush()`/`stop()`.
        """
        delivery: asyncio.Future[Any]
        if self._direct:
            # No publish middleware: the send layer's steps and aiokafka's send in this
            # frame, without an Outgoing (a third of evkafka's cost per event).
            topic = self._checked_topic(event_type, topic, partition, timestamp_ms)
            if key is not None and type(key) is not bytes:
                key = as_key(key)
            wire_headers = as_headers(headers) if headers else []
            value = self._send_layer.wire(event_type, event, None, wire_headers)
            if value is None and key is None:
                check_sendable(event_type, value, key)
            try:
                delivery = await self._producer.send(
                    topic, value, key, partition, timestamp_ms, wire_headers
                )
            except (KafkaError, AssertionError) as exc:
                outgoing = Outgoing(
                    topic, event_type, event, key, wire_headers, partition, timestamp_ms
                )
                raise _send_error(outgoing, exc) from exc
        else:
            outgoing = self._outgoing(
                event, event_type, topic, key, partition, timestamp_ms, headers
            )
            await self._chain(outgoing)
            if outgoing.delivery is None:
                return _dropped()
            delivery, topic = outgoing.delivery, outgoing.topic
        self._inflight.append((delivery, topic, event_type))
        if self._watched is None:
            self._watch_oldest()
        return delivery

    async def send_event_and_wait(
        self,
        event: Any,
        event_type: str,
        topic: str | None = None,
        key: bytes | str | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: HeadersArg | None = None,
    ) -> Any:
        """Send one event and return aiokafka's RecordMetadata; failures raise DeliveryError."""
        outgoing = self._outgoing(event, event_type, topic, key, partition, timestamp_ms, headers)
        await self._chain(outgoing)
        delivery = outgoing.delivery
        if delivery is None:
            return None
        try:
            return await delivery
        except Exception as exc:
            raise DeliveryError(
                f"delivery of event {outgoing.event_type!r} to topic {outgoing.topic!r} failed: "
                f"{describe(exc)}",
                [exc],
            ) from exc

    def _outgoing(
        self,
        event: Any,
        event_type: str,
        topic: str | None,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: HeadersArg | None,
    ) -> Outgoing:
        topic = self._checked_topic(event_type, topic, partition, timestamp_ms)
        return Outgoing(
            topic,
            event_type,
            event,
            key if key is None or type(key) is bytes else as_key(key),
            as_headers(headers) if headers else [],
            partition,
            timestamp_ms,
        )

    def _checked_topic(
        self, event_type: Any, topic: str | None, partition: Any, timestamp_ms: Any
    ) -> str:
        """The event's topic, after checking the producer runs and the arguments are sound."""
        if not self._open:
            raise NotStartedError(
                f"producer {self.name!r} is not started: use `async with EVKafkaProducer(config)` "
                f"or `await producer.start()` before sending"
            )
        topic = topic or self.topic
        if topic is None:
            raise ConfigError(
                f"no topic for event {event_type!r}: pass topic= or set 'topic' in the producer config"
            )
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"event_type must be a non-empty str, not {event_type!r}")
        if partition is not None and (type(partition) is not int or partition < 0):
            raise ValueError(f"partition must be a non-negative int, not {partition!r}")
        if timestamp_ms is not None and (type(timestamp_ms) is not int or timestamp_ms < 0):
            raise ValueError(f"timestamp_ms must be a non-negative int, not {timestamp_ms!r}")
        return topic

    async def _transmit(self, outgoing: Outgoing) -> asyncio.Future[Any]:
        try:
            return await self._send(outgoing)
        except (KafkaError, AssertionError) as exc:
            raise _send_error(outgoing, exc) from exc

    def _send(self, outgoing: Outgoing) -> Awaitable[asyncio.Future[Any]]:
        """aiokafka's send of the encoded event (errors raise where it is awaited)."""
        producer = self._producer
        if producer is None:
            raise NotStartedError(f"producer {self.name!r} stopped while sending")
        if outgoing.value is None and outgoing.key is None:
            check_sendable(outgoing.event_type, None, None)  # raises: a tombstone needs a key
        return producer.send(  # type: ignore[no-any-return]
            outgoing.topic,
            outgoing.value,
            outgoing.key,
            outgoing.partition,
            outgoing.timestamp_ms,
            outgoing.headers,
        )

    # -- fire-and-forget bookkeeping -------------------------------------

    # Deliveries are checked in bulk, not with one callback each (that would cost more
    # than the rest of send_event): one callback watches the oldest pending delivery
    # and, when it completes, sweeps every finished delivery in send order.

    def _watch_oldest(self) -> None:
        head = self._inflight[0][0]
        self._watched = head
        head.add_done_callback(self._on_oldest_done)

    def _on_oldest_done(self, _: asyncio.Future[Any]) -> None:
        self._watched = None
        self._sweep()
        if self._inflight:
            self._watch_oldest()

    def _sweep(self) -> None:
        """Settle finished deliveries from the left, stopping at the first pending one."""
        inflight = self._inflight
        while inflight and inflight[0][0].done():
            self._settle(*inflight.popleft())

    def _settle(self, delivery: asyncio.Future[Any], topic: str, event_type: str) -> None:
        if delivery.cancelled():
            return
        exc = delivery.exception()
        if exc is None:
            return
        self.delivery_failures += 1
        self._unreported += 1
        if len(self._failures) < MAX_KEPT_FAILURES:
            self._failures.append(exc)
        logger.error(
            "producer %r: delivery of event %r to topic %r failed: %s",
            self.name,
            event_type,
            topic,
            describe(exc),
        )

    async def _settled(self) -> None:
        """Wait for every delivery sent so far and settle them all."""
        pending = [entry[0] for entry in self._inflight if not entry[0].done()]
        if pending:
            await asyncio.wait(pending)
        self._settle_done()

    def _settle_done(self) -> None:
        still: deque[Inflight] = deque()
        for entry in self._inflight:
            if entry[0].done():
                self._settle(*entry)
            else:  # sent while flushing
                still.append(entry)
        self._inflight = still
        if still and self._watched is None:
            self._watch_oldest()

    def _raise_failures(self) -> None:
        if not self._unreported:
            return
        count, failures = self._unreported, self._failures
        self._unreported, self._failures = 0, []
        first = failures[0]
        raise DeliveryError(
            f"producer {self.name!r}: {count} event(s) sent without waiting failed delivery; "
            f"first: {describe(first)}",
            failures,
        )


def _send_error(outgoing: Outgoing, exc: Exception) -> DeliveryError:
    """What aiokafka's refusal to send an event means, as a DeliveryError."""
    if isinstance(exc, AssertionError):  # aiokafka asserts the partition exists
        return DeliveryError(
            f"cannot send event {outgoing.event_type!r}: topic {outgoing.topic!r} has no "
            f"partition {outgoing.partition}",
            [exc],
        )
    return DeliveryError(
        f"cannot send event {outgoing.event_type!r} to topic {outgoing.topic!r}: "
        f"{describe(exc)}",
        [exc],
    )


def _dropped() -> asyncio.Future[Any]:
    """The delivery future of an event a publish middleware chose not to send."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
