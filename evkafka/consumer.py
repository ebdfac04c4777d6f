"""The consumer engine: one aiokafka consumer, one ordered worker per partition."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from evkafka.config import aiokafka_consumer_kwargs, topic_names
from evkafka.deadletter import DeadLetterPublisher
from evkafka.errors import EVKafkaError
from evkafka.message import Message
from evkafka.middleware.commit import CommitMiddleware
from evkafka.middleware.errors import ErrorPolicyMiddleware
from evkafka.offsets import OffsetTracker
from evkafka.types import MessageApp, TimedLayer

logger = logging.getLogger("evkafka.consumer")

#: The error policy's recovery step: (message, its original value, the error).
Recover = Callable[[Message, "bytes | None", Exception], Awaitable[None]]


class ConsumerStartupError(EVKafkaError):
    """The consumer could not connect within its startup timeout."""


class ConsumerFailed(EVKafkaError):
    """A partition worker stopped on an error the policy did not absorb."""


#: Records a partition worker handles before it lets other tasks run.
SLICE = 256

#: The broker's longest wait on a fetch request while a partition is paused (see `_pace_fetches`).
PAUSED_FETCH_WAIT_MS = 10
#: aiokafka's fetch routine's longest sleep while a backlog is worked through (see `_pace_fetches`).
BACKLOG_FETCHER_TIMEOUT_S = 0.01


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
        self._wakeup.set()

    @property
    def first_unfinished(self) -> int | None:
        """The oldest offset handed to this worker and not finished (where work stands)."""
        if self.current is not None:
            return self.current
        if self.batches:
            return int(self.batches[0][0].offset)
        return self.tracker.position

    async def _run(self) -> None:
        c = self.consumer
        batches, resume_at = self.batches, c.buffer_size // 2
        steps = self._steps()
        try:
            while not self.stopping:
                if not batches:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                records = batches.popleft()
                self.buffered -= len(records)
                if self.paused and self.buffered <= resume_at:
                    self.paused = False
                    c.resume(self.tp)
                await self._handle(records, *steps)
                self.busy_since = None
                self.current = None
                # A CPU-bound endpoint never yields, so give the loop a turn after each
                # slice: aiokafka sends its next fetch request, other partitions run.
                await asyncio.sleep(0)
        except Exception as exc:
            self.error = exc
            logger.error(
                "consumer %r stopped: %s[%s] failed: %s: %s",
                c.name,
                self.tp.topic,
                self.tp.partition,
                type(exc).__name__,
                exc,
                extra={
                    "consumer": c.name,
                    "group_id": c.group_id,
                    "topic": self.tp.topic,
                    "partition": self.tp.partition,
                    "offset": self.current,
                },
            )
            c.fail(exc)

    def _steps(self) -> tuple[MessageApp, Recover, bool, bool, TimedLayer | None]:
        """(inner app, recover, mark before, mark after, timed layer) for handling a record.

        The commit and error-policy layers `build_chain` puts outermost run inline in
        `_handle`, the same steps as their `__call__` without two coroutines per record,
        and so does a timed layer (metrics) right inside them. Any other chain is awaited
        whole and marks offsets through `Consumer.mark_done`.
        """
        chain = self.consumer.chain
        policy = getattr(chain, "app", None)
        if (
            type(chain) is CommitMiddleware
            and chain.committer is self.consumer
            and type(policy) is ErrorPolicyMiddleware
        ):
            inner: Any = policy.app
            timed: TimedLayer | None = None
            if getattr(type(inner), "times_inner_layers", False):
                timed = inner
                timed.consumer = self.consumer.name
                inner = timed.app
            return inner, policy.recover, chain.pre_commit, not chain.pre_commit, timed
        return chain, _reraise, False, False, None

    async def _handle(
        self,
        records: list[Any],
        inner: MessageApp,
        recover: Recover,
        mark_before: bool,
        mark_after: bool,
        timed: TimedLayer | None,
    ) -> None:
        c = self.consumer
        state, tp, name, group, client = c.state, self.tp, c.name, c.group_id, c.client_id
        mark_done = self.tracker.mark_done
        for r in records:
            if self.stopping:
                break
            offset = r.offset
            self.current = offset
            message = Message(
                r.topic,
                r.partition,
                offset,
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
            self.busy_since = started = monotonic()
            if mark_before:
                mark_done(offset)
            if timed is None:
                try:
                    await inner(message)
                except Exception as exc:
                    await recover(message, r.value, exc)
            else:  # the timed layer's __call__, inline, timed from busy_since
                timed.in_flight += 1
                try:
                    await inner(message)
                except Exception as exc:
                    timed.failed(message, exc, monotonic() - started)
                    await recover(message, r.value, exc)
                except BaseException:
                    timed.in_flight -= 1
                    raise
                else:
                    timed.finished(message, monotonic() - started)
            if mark_after:
                mark_done(offset)


async def _reraise(message: Message, value: bytes | None, error: Exception) -> None:
    raise error


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
        #: aiokafka's configured fetch wait and fetch-routine timeout, kept while
        #: `_pace_fetches` shortens them.
        self._fetch_defaults: tuple[int, float] | None = None
        #: A partition was paused since the consumer last found nothing to fetch.
        self._backlog = False
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
                # All that aiokafka holds, never part of it: aiokafka leaves a partition
                # with unreturned records out of its next fetch request, and a request for
                # only caught-up partitions waits fetch_max_wait_ms at the broker while
                # the others have records there to fetch. Backpressure is `pause()`.
                batches = await kafka.getmany(timeout_ms=100)
                self.last_poll = time.monotonic()
                if not batches and self._backlog:
                    self._caught_up()
                for tp, records in batches.items():
                    worker = workers.get(tp)
                    if worker is None:
                        worker = workers[tp] = PartitionWorker(self, tp)
                    worker.feed(records)
                    if worker.buffered >= limit and not worker.paused:
                        worker.paused = True
                        kafka.pause(tp)
                        self._pace_fetches()
                if self.last_poll >= next_commit:
                    await self.commit()
                    next_commit = self.last_poll + self.commit_interval
        except Exception as exc:
            logger.exception("consumer %r fetch loop failed", self.name)
            self.fail(exc)
        finally:
            self._done.set()

    def resume(self, tp: TopicPartition) -> None:
        """Fetch from `tp` again (its worker worked through half its buffer)."""
        kafka = self._kafka
        if kafka is not None and tp in kafka.assignment():
            kafka.resume(tp)
        self._pace_fetches()

    def _pace_fetches(self) -> None:
        """Shorten aiokafka's waits while a backlog is worked through (a partition paused).

        aiokafka has one fetch request in flight per broker. While a partition is paused the
        request carries only the others; if they are caught up, the broker holds it for
        `fetch_max_wait_ms` (500 ms by default), and the paused partition, once resumed,
        waits behind it with records to fetch: one lagging partition beside caught-up ones
        ran 4-5x slower. So the fetch wait drops to 10 ms while anything is paused.
        Separately, aiokafka's fetch routine can miss a resume that coincides with a fetch
        response and then sleeps its `consumer_timeout_ms` (200 ms) before fetching the
        resumed partition; that sleep drops to 10 ms until the consumer has caught up.
        Both are read from aiokafka's fetcher for each request; without those attributes
        (another aiokafka version) nothing changes but the speed.
        """
        fetcher: Any = getattr(self._kafka, "_fetcher", None)
        if not (hasattr(fetcher, "_fetch_max_wait_ms") and hasattr(fetcher, "_fetcher_timeout")):
            return
        if self._fetch_defaults is None:
            self._fetch_defaults = (fetcher._fetch_max_wait_ms, fetcher._fetcher_timeout)
        wait, sleep = self._fetch_defaults
        if any(w.paused for w in self.workers.values()):
            self._backlog = True
            wait = min(wait, PAUSED_FETCH_WAIT_MS)
        if self._backlog:
            sleep = min(sleep, BACKLOG_FETCHER_TIMEOUT_S)
        fetcher._fetch_max_wait_ms = wait
        fetcher._fetcher_timeout = sleep

    def _caught_up(self) -> None:
        """A fetch found nothing: unless a partition is paused, the backlog is over."""
        if not any(w.paused for w in self.workers.values()):
            self._backlog = False
            self._pace_fetches()

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
        self._pace_fetches()

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
