"""The consumer engine against the real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from evkafka import ErrorPolicy, EVKafkaApp, Handler, Request
from evkafka.consumer import Consumer, PartitionWorker
from tests.brokerkit import committed, consumer_config, create_topic, event, produce, unique


async def run_until(app: EVKafkaApp, done: asyncio.Event, timeout: float = 30.0) -> None:
    await app.start()
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    finally:
        await app.stop()


async def test_every_message_handled_once_in_partition_order(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=4)
    n = 400
    await produce(
        bootstrap,
        topic,
        [event(b'{"i": %d}' % i, partition=i % 4, key=b"k") for i in range(n)],
    )
    seen: dict[int, list[int]] = defaultdict(list)
    done = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict, request: Request) -> None:
        seen[request.partition].append(payload["i"])
        if sum(map(len, seen.values())) == n:
            done.set()

    config = consumer_config(bootstrap, topic)
    app = EVKafkaApp()
    app.add_consumer(config, handler)
    await run_until(app, done)
    assert sorted(i for part in seen.values() for i in part) == list(range(n))
    for p, items in seen.items():
        assert items == sorted(items), f"partition {p} out of order"
    assert await committed(bootstrap, config["group_id"], topic, 4) == {p: n // 4 for p in range(4)}


async def test_slow_partition_does_not_stall_the_others(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    await produce(bootstrap, topic, [event(b'{"i": 0}', partition=0)])
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i, partition=1) for i in range(1, 51)])
    release = asyncio.Event()
    fast_done = asyncio.Event()
    fast: list[int] = []
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict, request: Request) -> None:
        if request.partition == 0:
            await release.wait()
        else:
            fast.append(payload["i"])
            if len(fast) == 50:
                fast_done.set()

    app = EVKafkaApp()
    app.add_consumer(consumer_config(bootstrap, topic), handler)
    await app.start()
    try:
        async with asyncio.timeout(20):
            await fast_done.wait()
        assert not release.is_set()
        release.set()
    finally:
        await app.stop()
    assert fast == list(range(1, 51))


async def consume_once(
    bootstrap: str, topic: str, group: str, stop_after: int, mode: str = "post-commit", fail_on: int | None = None
) -> tuple[list[int], int]:
    """Run an app until `stop_after` messages were seen (or it failed); returns (seen, exit code)."""
    seen: list[int] = []
    enough = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        seen.append(payload["i"])
        if len(seen) >= stop_after:
            enough.set()
        if payload["i"] == fail_on:
            raise RuntimeError("endpoint failure")

    app = EVKafkaApp(error_policy=ErrorPolicy(retries=0))  # fail on the first error
    app.add_consumer(consumer_config(bootstrap, topic, group, auto_commit_mode=mode), handler)
    serve = asyncio.create_task(app.serve())
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait([serve, asyncio.create_task(enough.wait())], return_when=asyncio.FIRST_COMPLETED)
        if serve not in done:
            await app.stop()
            serve.cancel()
            return seen, 0
    return seen, serve.result()


async def test_post_commit_failure_is_redelivered_after_restart(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(5)])
    seen, code = await consume_once(bootstrap, topic, group, stop_after=99, fail_on=2)
    assert (seen, code) == ([0, 1, 2], 1)
    assert await committed(bootstrap, group, topic, 1) == {0: 2}
    seen, _ = await consume_once(bootstrap, topic, group, stop_after=3)
    assert seen == [2, 3, 4]


async def test_pre_commit_failure_is_not_redelivered(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(5)])
    seen, code = await consume_once(bootstrap, topic, group, stop_after=99, mode="pre-commit", fail_on=2)
    assert (seen, code) == ([0, 1, 2], 1)
    assert await committed(bootstrap, group, topic, 1) == {0: 3}
    seen, _ = await consume_once(bootstrap, topic, group, stop_after=2, mode="pre-commit")
    assert seen == [3, 4]


async def test_a_full_buffer_pauses_fetching_until_half_is_worked_through(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    n = 3000
    for start in range(0, n, 30):  # record batches of 30: a fetch holds whole batches
        await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(start, start + 30)])
    buffer_size = 100
    app = EVKafkaApp()
    #: (records buffered, partition paused) at each delivery from the fetch loop.
    deliveries: list[tuple[int, bool, int]] = []
    real_feed = PartitionWorker.feed

    def feed(worker: PartitionWorker, records: list[Any]) -> None:
        deliveries.append((worker.buffered, worker.paused, len(records)))
        real_feed(worker, records)

    monkeypatch.setattr(PartitionWorker, "feed", feed)
    #: (records buffered, paused in aiokafka) as each record is handled.
    seen: list[tuple[int, bool]] = []
    done = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        consumer = app._running[0]
        worker = next(iter(consumer.workers.values()))
        seen.append((worker.buffered, worker.tp in consumer._kafka.paused()))
        await asyncio.sleep(0)
        if payload["i"] == n - 1:
            done.set()

    # Small fetches (one 30-record batch each), so the buffer fills over many of them.
    app.add_consumer(
        consumer_config(
            bootstrap, topic, partition_buffer_size=buffer_size, max_partition_fetch_bytes=1024, fetch_max_bytes=1024
        ),
        handler,
    )
    await run_until(app, done)
    assert len(deliveries) > 10
    # Nothing is delivered to a paused partition, and it pauses once the buffer is full:
    assert not any(paused for _, paused, _ in deliveries)
    assert all(before < buffer_size for before, _, _ in deliveries)
    # so the buffer never holds more than one fetch beyond the limit.
    largest = max(size for _, _, size in deliveries)
    assert max(buffered for buffered, _ in seen) <= buffer_size + largest
    # Paused while more than half full, fetching again from half.
    assert any(paused for _, paused in seen)
    assert all(buffered > buffer_size // 2 for buffered, paused in seen if paused)


async def test_a_paused_partition_does_not_wait_behind_caught_up_ones(bootstrap: str) -> None:
    # Every record on partition 0 of 4. While 0 is paused, a fetch request carries only
    # the caught-up partitions and the broker may hold it for fetch_max_wait_ms (10 s here);
    # partition 0, resumed, must not wait behind it (about 2 s in all here without a wait).
    topic = await create_topic(bootstrap, partitions=4)
    n = 40_000
    pad = b"x" * 180
    await produce(bootstrap, topic, [event(b'{"i": %d, "pad": "%s"}' % (i, pad)) for i in range(n)])
    handler, done = Handler(), asyncio.Event()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        if payload["i"] == n - 1:
            done.set()

    app = EVKafkaApp()
    app.add_consumer(
        consumer_config(bootstrap, topic, fetch_max_wait_ms=10_000),
        handler,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run_until(app, done, timeout=90)
    assert loop.time() - started < 8


async def test_fetch_waits_are_short_while_a_backlog_is_worked_through_and_restored_after(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backlog on partition 0 of 4, a small buffer: the partition pauses and resumes
    # many times. While it does, aiokafka's broker wait and fetch-routine sleep are short
    # (a resume must not wait behind a held request or a missed wake-up); once the
    # consumer has caught up, both are back to the configured values.
    topic = await create_topic(bootstrap, partitions=4)
    n = 3000
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(n)])
    app = EVKafkaApp()
    #: (partition 0 paused, broker wait ms, fetch-routine sleep s) as records are handled.
    seen: list[tuple[bool, int, float]] = []
    done, caught_up = asyncio.Event(), asyncio.Event()
    real_caught_up = Consumer._caught_up

    def watched(consumer: Consumer) -> None:
        real_caught_up(consumer)
        if not consumer._backlog:
            caught_up.set()

    monkeypatch.setattr(Consumer, "_caught_up", watched)
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict) -> None:
        consumer = app._running[0]
        fetcher = consumer._kafka._fetcher
        worker = next(iter(consumer.workers.values()))
        seen.append((worker.paused, fetcher._fetch_max_wait_ms, fetcher._fetcher_timeout))
        if payload["i"] == n - 1:
            done.set()

    app.add_consumer(
        consumer_config(
            bootstrap,
            topic,
            partition_buffer_size=100,
            fetch_max_wait_ms=2000,
            consumer_timeout_ms=3000,
            max_partition_fetch_bytes=4096,
            fetch_max_bytes=4096,
        ),
        handler,
    )
    await app.start()
    try:
        async with asyncio.timeout(60):
            await done.wait()
            assert any(paused for paused, _, _ in seen)
            assert all((wait, sleep) == (10, 0.01) for paused, wait, sleep in seen if paused)
            # After a resume, until the backlog is done, the routine still wakes up quickly.
            assert any(sleep == 0.01 for paused, _, sleep in seen if not paused)
            consumer = app._running[0]
            if consumer._backlog:  # until a fetch finds nothing
                caught_up.clear()
                await caught_up.wait()
            fetcher = consumer._kafka._fetcher
            assert (fetcher._fetch_max_wait_ms, fetcher._fetcher_timeout) == (2000, 3.0)
    finally:
        await app.stop()


async def test_unreachable_broker_fails_within_the_startup_timeout() -> None:
    from evkafka.devbroker import free_port

    app = EVKafkaApp()
    app.add_consumer(
        {"topics": ["t"], "bootstrap_servers": f"127.0.0.1:{free_port()}", "startup_timeout_ms": 1500},
        Handler(),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(15):
        code = await app.serve()
    assert code == 1
    assert loop.time() - started < 10


async def test_several_consumers_side_by_side(bootstrap: str) -> None:
    t1 = await create_topic(bootstrap, partitions=1)
    t2 = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, t1, [event(b'{"i": 1}')])
    await produce(bootstrap, t2, [event(b'{"i": 2}', event_type="Other")])
    got: dict[str, int] = {}
    done = asyncio.Event()
    h1, h2 = Handler(), Handler()

    @h1.event("E")
    async def on_1(payload: dict, request: Request) -> None:
        got[request.message.consumer_name or ""] = payload["i"]
        if len(got) == 2:
            done.set()

    @h2.event("Other")
    async def on_2(payload: dict, request: Request) -> None:
        await on_1(payload, request)

    app = EVKafkaApp()
    app.add_consumer(consumer_config(bootstrap, t1), h1, name="one")
    app.add_consumer(consumer_config(bootstrap, t2), h2, name="two")
    await run_until(app, done)
    assert got == {"one": 1, "two": 2}
