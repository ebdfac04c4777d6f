"""Drive an app's consumers without Kafka, through the real middleware stack."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka.structs import RecordMetadata, TopicPartition

from evkafka.app import ConsumerSpec, EVKafkaApp, ProducerSpec
from evkafka.codec import JSON
from evkafka.config import ProducerConfig
from evkafka.conventions import HeaderConvention
from evkafka.deadletter import dead_letter_headers
from evkafka.lifespan import LifespanRunner
from evkafka.message import Message
from evkafka.outgoing import Outgoing
from evkafka.producer import EVKafkaProducer, check_sendable
from evkafka.stack import find_convention
from evkafka.types import MessageApp


@dataclass(frozen=True)
class DeadLetter:
    """A record the error policy dead-lettered under TestClient."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    error: BaseException


class InMemoryDeadLetters:
    """Stands in for the dead-letter producer: keeps what would have been written."""

    def __init__(self, sink: list[DeadLetter]) -> None:
        self.sink = sink

    def require(self, producer: ProducerConfig | None = None) -> None:
        pass

    async def publish(
        self,
        message: Message,
        value: bytes | None,
        error: BaseException,
        topic: str,
        producer: ProducerConfig | None = None,
    ) -> None:
        headers = dead_letter_headers(message, error)
        self.sink.append(DeadLetter(topic, message.key, value, headers, error))


class InMemoryCommitter:
    """Records what a consumer engine would commit: (topic, partition) -> next offset."""

    def __init__(self, dead_letters: InMemoryDeadLetters | None = None) -> None:
        self.committed: dict[tuple[str, int], int] = {}
        self.dead_letters = dead_letters

    def mark_done(self, message: Message) -> None:
        key = (message.topic, message.partition)
        if message.offset + 1 > self.committed.get(key, 0):
            self.committed[key] = message.offset + 1


class RecordingProducer(EVKafkaProducer):
    """Stands in for Kafka under TestClient: keeps each event, encoded and labelled, in `sent`."""

    def __init__(self, config: ProducerConfig, sent: list[Outgoing], **options: Any) -> None:
        super().__init__(config, **options)
        #: Every event goes through the send layer to `_send`, which records it.
        self._direct = False
        self.sent = sent
        self._offsets: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        self._open = True

    def _send(self, outgoing: Outgoing) -> Awaitable[asyncio.Future[Any]]:
        return self._record(outgoing)

    async def _record(self, outgoing: Outgoing) -> asyncio.Future[Any]:
        check_sendable(outgoing.event_type, outgoing.value, outgoing.key)
        partition = outgoing.partition or 0
        offset = self._offsets.get((outgoing.topic, partition), 0)
        self._offsets[(outgoing.topic, partition)] = offset + 1
        timestamp = outgoing.timestamp_ms
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        self.sent.append(outgoing)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(
            RecordMetadata(
                outgoing.topic,
                partition,
                TopicPartition(outgoing.topic, partition),
                offset,
                timestamp,
                0,
                0,
            )
        )
        return delivery


class TestClient:
    """`with TestClient(app) as client: client.send_event(...)`, or `async with` in async tests.

    Each event is encoded, labelled with the consumer's own event-type convention and
    sent through that consumer's full chain; the endpoint's exception is raised here.
    Registered senders send into `client.sent` (Outgoing objects, encoded and labelled)
    through their publish middleware instead of to Kafka.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, app: EVKafkaApp, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.committers: dict[str, InMemoryCommitter] = {}
        self._chains: dict[str, MessageApp] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._lifespan = LifespanRunner(app.lifespan, app)
        #: Every event the app's senders produced while the client was open.
        self.sent: list[Outgoing] = []
        #: Every record an error policy dead-lettered while the client was open.
        self.dead_letters: list[DeadLetter] = []
        self._recorders: list[tuple[ProducerSpec, RecordingProducer]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._async = False

    # -- sending ---------------------------------------------------------

    def send_event(
        self,
        topic: str,
        event: Any,
        event_type: str,
        key: bytes | None = None,
        headers: Mapping[str, bytes] | None = None,
        partition: int = 0,
        timestamp_ms: int | None = None,
        consumer_name: str | None = None,
    ) -> Any:
        """Deliver one event and wait for its endpoint (a coroutine under `async with`)."""
        coro = self._deliver(
            topic, event, event_type, key, headers, partition, timestamp_ms, consumer_name
        )
        if self._async:
            return coro
        if self._loop is None:
            coro.close()
            raise RuntimeError(
                "use TestClient as a context manager: `with TestClient(app) as client:`"
            )
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)
        return None

    def _spec(self, name: str | None) -> ConsumerSpec:
        consumers = self.app.consumers
        if not consumers:
            raise AssertionError("the app has no consumers registered")
        if name is None:
            if len(consumers) > 1:
                raise AssertionError(
                    f"the app has several consumers ({', '.join(consumers)}); "
                    f"pass consumer_name= to pick one"
                )
            return next(iter(consumers.values()))
        try:
            return consumers[name]
        except KeyError:
            raise AssertionError(
                f"no consumer named {name!r}; registered: {', '.join(consumers)}"
            ) from None

    async def _deliver(
        self,
        topic: str,
        event: Any,
        event_type: str,
        key: bytes | None,
        headers: Mapping[str, bytes] | None,
        partition: int,
        timestamp_ms: int | None,
        consumer_name: str | None,
    ) -> None:
        spec = self._spec(consumer_name)
        chain = self._chains.get(spec.name)
        if chain is None:
            committer = self.committers[spec.name] = InMemoryCommitter(
                InMemoryDeadLetters(self.dead_letters)
            )
            chain = self._chains[spec.name] = spec.chain(committer)
        out_headers = list((headers or {}).items())
        value = None if event is None else JSON.encode(event)
        convention = find_convention(chain) or HeaderConvention()
        value = convention.write(event_type, value, out_headers)
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        message = Message(
            topic,
            partition,
            offset,
            key,
            value,
            tuple(out_headers),
            timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            state=self._lifespan.state,
            consumer_name=spec.name,
            group_id=spec.settings.get("group_id"),
            client_id=spec.settings.get("client_id"),
        )
        # In a task of its own, as in a partition worker: context variables the layers set
        # (the tracing layer leaves the record's trace context current) stay out of the test.
        await asyncio.ensure_future(chain(message))

    def sent_events(self, event_type: str | None = None) -> list[Outgoing]:
        """What the senders produced, optionally only events of `event_type`."""
        if event_type is None:
            return list(self.sent)
        return [o for o in self.sent if o.event_type == event_type]

    # -- lifecycle (like the app: lifespan, then producers) --------------

    async def _start(self) -> None:
        await self._lifespan.start()
        for spec in self.app.producers.values():
            recorder = RecordingProducer(
                spec.config,
                self.sent,
                codec=spec.producer.codec,
                convention=spec.convention,
                middleware=spec.middleware,
                name=spec.name,
            )
            spec.sender.bind(recorder)
            self._recorders.append((spec, recorder))
            await recorder.start()

    async def _stop(self, exc: BaseException | None) -> None:
        recorders, self._recorders = self._recorders, []
        for spec, recorder in recorders:
            await recorder.stop()
            spec.sender.unbind(recorder)
        await self._lifespan.stop(exc)

    # -- sync context ----------------------------------------------------

    def __enter__(self) -> TestClient:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("inside a running event loop use `async with TestClient(app)`")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="evkafka-testclient", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(self.timeout)
        except BaseException:
            self._close_loop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._loop is not None
        try:
            asyncio.run_coroutine_threadsafe(self._stop(exc), self._loop).result(
                self.timeout
            )
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(self.timeout)
        loop.close()

    # -- async context ---------------------------------------------------

    async def __aenter__(self) -> TestClient:
        self._async = True
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._async = False
        await self._stop(exc)
