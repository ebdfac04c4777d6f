"""The consumer engine: one aiokafka consumer, one ordered worker per partition."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from evkafka.config import aiokafka_consumer_kwargs, topic_names
from evkafka.deadletter import DeadLetterPublisher
from evkafka.errors import EVKafkaError
from evkafka.message import Message
from evkafka.offsets import OffsetTracker
from evkafka.types import MessageApp

logger = logging.getLogger("evkafka.consumer")


class ConsumerStartupError(EVKafkaError):
    """The consumer could not connect within its startup timeout."""


class ConsumerFailed(EVKafkaError):
    """A partition worker stopped on an error the policy did not absorb."""


#: Records a partition worker handles before it lets other tasks run.
SLICE = 256


class PartitionWorker:
    """Processes one partition's records strictly in order, from a bounded buffer."""

    def __init__(self, consumer: Consumer, tp: TopicPartition) -> None:
        self.consumer = consumer
        self.tp = tp
        self.tracker = OffsetTracker()
        self.batches: deque[list[Any]] = deque()
        self.buffered = 0
        self.paused = False
        self.stopping = False
        self.busy_since: float | None = None
        self.current: int | None = None
        self.error: BaseException | None = None
        self._wakeup = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"evkafka-{tp.topic}-{tp.partition}")

    def feed(self, records: list[Any]) -> None:
        self.tracker.track([r.offset for r in records])
        # The worker yields after each slice, so partitions share the CPU record by
        # record (a 2000-record batch would otherwise hold the loop for its whole run).
        if len(records) > SLICE:
            self.batches.extend(records[i : i + SLICE] for i in range(0, len(records), SLICE))
        else:
            self.batches.append(records)
        self.buffered += len(records)
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the message in hand, drop the rest (it stays uncommitted)."""
        self.stopping = True
        self.batches.clear()
        self.buffered = 0
        self.tracker.drop_after(self.current)
        self._wakeup.set()

    async def _run(self) -> None:
        c = self.consumer
        chain, state, tp = c.chain, c.state, self.tp
        name, group, client = c.name, c.group_id, c.client_id
        batches, limit, room = self.batches, c.buffer_size, c.room
        try:
            while not self.stopping:
                if not batches:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                records = batches.popleft()
                self.buffered -= len(records)
                if self.paused and self.buffered < limit:
                    self.paused = False
                    room.set()
                for r in records:
                    if self.stopping:
                        break
                    # Nothing else runs between two records (no await), so `current` and
                    # `busy_since` are reset once per batch, not once per record.
                    self.current = r.offset
                    self.busy_since = time.monotonic()
                    await chain(
                        Message(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.key,
                            r.value,
                            r.headers,
                            r.timestamp,
                            state,
                            name,
                            group,
                            client,
                            tp,
                        )
                    )
                self.busy_since = None
                self.current = None
                # A CPU-bound endpoint never yields, so give the loop a turn after each
                # batch: aiokafka sends its next fetch request, other partitions run.
                await asyncio.sleep(0)
        except Exception as exc:
            self.error = exc
            logger.error(
                "consumer %r stopped: %s[%s] failed: %s: %s",
                name,
                tp.topic,
                tp.partition,
                type(exc).__name__,
                exc,
                extra={
                    "consumer": name,
                    "group_id": group,
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "offset": self.current,
                },
            )
            c.fail(exc)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.consumer.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.consumer.assigned_at = time.monotonic()
        logger.info("consumer %r assigned %s", self.consumer.name, sorted(assigned))


class Consumer:
    """Fetches in batches, fans out to partition workers, commits done offsets in batches."""

    def __init__(
        self,
        name: str,
        settings: dict[str, Any],
        build_chain: Callable[[Consumer], MessageApp],
        state: dict[str, Any],
        on_failure: Callable[[Consumer, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.topics = topic_names(settings)
        self.group_id: str | None = settings.get("group_id")
        self.client_id: str | None = settings.get("client_id")
        self.state = state
        self.buffer_size: int = settings["partition_buffer_size"]
        self.commit_interval = settings["auto_commit_interval_ms"] / 1000
        self.exec_limit = settings["max_endpoint_exec_time_ms"] / 1000
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        #: Set by a worker whose full buffer has room again, to wake the fetch loop.
        self.room = asyncio.Event()
        #: Connected in `start` only if an error policy dead-letters (declared by the chain).
        self.dead_letters = DeadLetterPublisher(settings)
        self.chain = build_chain(self)
        self.error: BaseException | None = None
        self.assigned_at: float | None = None
        self.last_poll: float | None = None
        self.commits = 0
        #: Seconds spent in successful commits, and commits that failed (for metrics).
        self.commit_seconds = 0.0
        self.commit_failures = 0
        self._on_failure = on_failure
        self._kafka: AIOKafkaConsumer | None = None
        self._stopping = False
        self._fetch_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    # -- Committer -------------------------------------------------------

    def mark_done(self, message: Message) -> None:
        worker = self.workers.get(message.topic_partition)
        if worker is not None:
            worker.tracker.mark_done(message.offset)

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying with backoff until the startup timeout) and subscribe."""
        timeout = self.settings["startup_timeout_ms"] / 1000
        deadline = time.monotonic() + timeout
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            kafka = AIOKafkaConsumer(**aiokafka_consumer_kwargs(self.settings))
            try:
                await kafka.start()
                break
            except KafkaConnectionError as exc:
                await kafka.stop()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConsumerStartupError(
                        f"consumer {self.name!r} could not reach {self.settings['bootstrap_servers']!r} "
                        f"within {timeout:g}s ({attempt} attempts): {exc}"
                    ) from exc
                logger.warning(
                    "consumer %r: broker %r unreachable (attempt %d), retrying in %.1fs: %s",
                    self.name,
                    self.settings["bootstrap_servers"],
                    attempt,
                    min(delay, left),
                    exc,
                )
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)
        kafka.subscribe(self.topics, listener=_Rebalance(self))
        self._kafka = kafka
        await self.dead_letters.start()
        self._fetch_task = asyncio.create_task(self._fetch(), name=f"evkafka-fetch-{self.name}")
        logger.info("consumer %r started on %s (group %r)", self.name, self.topics, self.group_id)

    @property
    def fetching(self) -> bool:
        """The fetch loop is running."""
        return self._fetch_task is not None and not self._fetch_task.done()

    async def wait(self) -> None:
        """Return when the consumer stopped, on its own or by `stop()`."""
        await self._done.wait()

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            if self._on_failure is not None:
                self._on_failure(self, exc)
        self._stopping = True

    async def _fetch(self) -> None:
        kafka = self._kafka
        assert kafka is not None
        workers = self.workers
        limit = self.buffer_size
        next_commit = time.monotonic() + self.commit_interval
        try:
            while not self._stopping:
                full = [w for w in workers.values() if w.buffered >= limit]
                if full:
                    batches = await self._fetch_around(kafka, full)
                else:
                    batches = await kafka.getmany(timeout_ms=100, max_records=limit)
                self.last_poll = time.monotonic()
                for tp, records in batches.items():
                    worker = workers.get(tp)
                    if worker is None:
                        worker = workers[tp] = PartitionWorker(self, tp)
                    worker.feed(records)
                if self.last_poll >= next_commit:
                    await self.commit()
                    next_commit = self.last_poll + self.commit_interval
        except Exception as exc:
            logger.exception("consumer %r fetch loop failed", self.name)
            self.fail(exc)
        finally:
            self._done.set()

    async def _fetch_around(
        self, kafka: AIOKafkaConsumer, full: list[PartitionWorker]
    ) -> dict[TopicPartition, list[Any]]:
        """Fetch only partitions with room in their buffer; give up early when a full one drains.

        A full partition's records stay in aiokafka's prefetch buffer, so aiokafka fetches
        nothing more for it (backpressure) and nothing is dropped and fetched again, as
        `pause()` would.
        """
        room = self.room
        room.clear()
        for worker in full:
            worker.paused = True
        skip = {worker.tp for worker in full}
        wanted = [tp for tp in kafka.assignment() if tp not in skip]
        drained = asyncio.ensure_future(room.wait())
        if not wanted:
            try:
                await asyncio.wait([drained], timeout=0.1)
            finally:
                drained.cancel()
            return {}
        fetch = asyncio.ensure_future(
            kafka.getmany(*wanted, timeout_ms=100, max_records=self.buffer_size)
        )
        try:
            await asyncio.wait([fetch, drained], return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait([fetch])
        if fetch.cancelled():
            return {}
        batches: dict[TopicPartition, list[Any]] = fetch.result()
        return batches

    async def release(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop the workers of revoked partitions, let in-flight work end, commit it."""
        workers = [self.workers[tp] for tp in partitions if tp in self.workers]
        if not workers:
            return
        for w in workers:
            w.stop()
        await self._join(workers, self.exec_limit)
        await self.commit([w.tp for w in workers])
        for w in workers:
            self.workers.pop(w.tp, None)

    async def _join(self, workers: Sequence[PartitionWorker], limit_s: float) -> None:
        tasks = [w.task for w in workers if not w.task.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=limit_s)
        for task in pending:
            logger.error(
                "consumer %r: endpoint still running after %gs; cancelling it (under post-commit "
                "its record stays uncommitted and is redelivered)",
                self.name,
                limit_s,
            )
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def commit(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Commit the done position of each partition that moved (one request)."""
        kafka = self._kafka
        if kafka is None:
            return
        selected = partitions if partitions is not None else list(self.workers)
        offsets: dict[TopicPartition, int] = {}
        for tp in selected:
            worker = self.workers.get(tp)
            if worker is None:
                continue
            position = worker.tracker.to_commit()
            if position is not None:
                offsets[tp] = position
        if not offsets:
            return
        started = time.perf_counter()
        try:
            await kafka.commit(offsets)
        except KafkaError as exc:
            self.commit_failures += 1
            logger.warning(
                "consumer %r: commit of %s failed (%s: %s); the records will be redelivered "
                "to whoever owns the partitions next",
                self.name,
                offsets,
                type(exc).__name__,
                exc,
            )
            return
        self.commit_seconds += time.perf_counter() - started
        self.commits += 1
        for tp, position in offsets.items():
            self.workers[tp].tracker.committed = position

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop fetching, let in-flight endpoints finish, commit, leave the group.

        In-flight endpoints get `grace_s` (default: `max_endpoint_exec_time_ms`), then are cancelled.
        """
        self._stopping = True
        if self._fetch_task is not None:
            await asyncio.wait([self._fetch_task])
        workers = list(self.workers.values())
        for w in workers:
            w.stop()
        await self._join(workers, self.exec_limit if grace_s is None else grace_s)
        await self.commit()
        await self.dead_letters.stop()
        if self._kafka is not None:
            await self._kafka.stop()
            self._kafka = None
        self._done.set()
        logger.info("consumer %r stopped", self.name)
