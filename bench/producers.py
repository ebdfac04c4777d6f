"""Producer throughput: evkafka's Sender and EVKafkaProducer against a raw aiokafka producer.

Every variant sends the same dict, JSON-encoded by msgspec, with an `Event-Type` header,
so the difference is evkafka's own work. Fire-and-forget sends `n` events then flushes;
awaited sends `n_wait` events one at a time, each waiting for the broker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from bench.processes import run_child
from bench.report import Table, column, ratios, spread
from bench.session import Session
from bench.topics import create_topic
from bench.workload import EVENT_TYPE, HEADERS, cpu_seconds, order, peak_rss_mb

#: variant -> awaited (one at a time) or fire-and-forget.
VARIANTS: dict[str, bool] = {
    "raw-aiokafka": False,
    "evkafka-producer": False,
    "evkafka-sender": False,
    "raw-aiokafka-awaited": True,
    "evkafka-producer-awaited": True,
    "evkafka-sender-awaited": True,
}

Send = Callable[[], Awaitable[Any]]

#: Events each run sends before timing (connects, fetches metadata).
WARM_UP = 100


async def _timed(send: Send, flush: Callable[[], Awaitable[None]], n: int) -> dict[str, Any]:
    cpu = cpu_seconds()
    started = time.perf_counter()
    for _ in range(n):
        await send()
    await flush()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    return {"n": n, "msgs_per_s": n / elapsed, "cpu_us_per_msg": cpu / n * 1e6}


async def produce(job: dict[str, Any]) -> dict[str, Any]:
    """Warm up on the topic (creating it), then time `n` sends of one variant."""
    from evkafka import EVKafkaProducer, Sender

    variant, topic, bootstrap = job["variant"], job["topic"], job["bootstrap"]
    awaited = VARIANTS[variant]
    n = job["n_wait"] if awaited else job["n"]
    payload = order(123456)
    if variant.startswith("raw-aiokafka"):
        encode = msgspec.json.Encoder().encode
        raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await raw.start()
        try:
            for _ in range(WARM_UP):
                await raw.send(topic, encode(payload), headers=list(HEADERS))
            await raw.flush()
            if awaited:

                async def send() -> Any:
                    return await raw.send_and_wait(topic, encode(payload), headers=list(HEADERS))

            else:

                async def send() -> Any:
                    return await raw.send(topic, encode(payload), headers=list(HEADERS))

            result = await _timed(send, raw.flush, n)
        finally:
            await raw.stop()
    else:
        sender = Sender()

        @sender.event(EVENT_TYPE)
        async def send_order(order: dict[str, Any]) -> None: ...

        async with EVKafkaProducer({"bootstrap_servers": bootstrap, "topic": topic}) as producer:
            sender.bind(producer)
            for _ in range(WARM_UP):
                await producer.send_event(payload, EVENT_TYPE)
            await producer.flush()
            if variant == "evkafka-sender":

                async def send() -> Any:
                    return await send_order(payload)

            elif variant == "evkafka-sender-awaited":

                async def send() -> Any:
                    return await send_order(payload, wait=True)

            elif awaited:

                async def send() -> Any:
                    return await producer.send_event_and_wait(payload, EVENT_TYPE)

            else:

                async def send() -> Any:
                    return await producer.send_event(payload, EVENT_TYPE)

            result = await _timed(send, producer.flush, n)
            sender.unbind(producer)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


async def delivered(bootstrap: str, topic: str, partitions: int, expected: int) -> int:
    """Records in `topic`, read back (the test broker's end offsets undercount)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        count = idle = 0
        while count < expected and idle < 3:
            batches = await consumer.getmany(timeout_ms=500)
            idle = 0 if batches else idle + 1
            count += sum(len(records) for records in batches.values())
        # Anything beyond `expected` (a duplicate) shows up in one more short poll.
        batches = await consumer.getmany(timeout_ms=200)
        return count + sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


async def run(s: Session) -> None:
    """Each variant in its own process, interleaved by round; checks every event landed."""
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(s.rounds):
        runs: dict[str, dict[str, Any]] = {}
        for variant in s.producer_variants:
            topic = await create_topic(s.bootstrap, s.partitions, "bench-out")
            job = {
                "kind": "produce",
                "variant": variant,
                "topic": topic,
                "bootstrap": s.bootstrap,
                "n": s.n_produce,
                "n_wait": s.n_produce_awaited,
            }
            result = runs[variant] = await run_child(job, s.child_timeout(s.n_produce) + 30)
            expected = result["n"] + WARM_UP
            result["delivered"] = await delivered(s.bootstrap, topic, s.partitions, expected)
            result["exact"] = result["delivered"] == expected
            if not result["exact"]:
                s.report.fail(
                    f"produce {variant} round {r + 1}: {result['delivered']} records "
                    f"in the topic, expected {expected}"
                )
            print(f"  round {r + 1} {variant:26s} {result['msgs_per_s']:>9,.0f} msgs/s", flush=True)
        rounds.append(runs)
    s.report.data["produce"] = {"rounds": rounds}
    table = Table(
        f"Produce: {s.n_produce:,} fire-and-forget / {s.n_produce_awaited:,} awaited events "
        f"x {s.rounds} rounds",
        ["variant", "msgs/s", "x raw", "CPU µs/msg", "peak RSS MB", "all delivered"],
    )
    for variant in s.producer_variants:
        base = "raw-aiokafka-awaited" if VARIANTS[variant] else "raw-aiokafka"
        table.add(
            variant,
            spread(column(rounds, variant, "msgs_per_s")),
            spread(ratios(rounds, variant, base, "msgs_per_s"), 2)
            if base in s.producer_variants
            else "-",
            spread(column(rounds, variant, "cpu_us_per_msg"), 1),
            spread(column(rounds, variant, "peak_rss_mb")),
            f"{sum(1 for runs in rounds if runs[variant]['exact'])}/{len(rounds)} runs",
        )
    table.notes.append(
        "Fire-and-forget: send() each event, then one flush; awaited: each send waits for "
        "the broker's acknowledgement. Same dict payload and header for all."
    )
    s.report.table(table)
