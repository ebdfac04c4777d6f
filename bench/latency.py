"""End-to-end latency at a fixed rate: producer (the parent) -> broker -> consumer (a child).

Each event carries its send time (`time.monotonic_ns()`, one clock for every process on
the machine) in a `sent-ns` header; the consumer takes the difference when its endpoint
runs. Warm-up events (id -1) flow until the consumer reports its first one, so the
group join is not measured.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.processes import Child
from bench.report import Table, column, spread
from bench.session import Session, kafka_options
from bench.topics import create_topic, unique
from bench.workload import EVENT_TYPE, HEADERS, Order, order_bytes, peak_rss_mb
from evkafka import Request

CONTENDERS = ("raw-aiokafka", "evkafka-pydantic")


class Latencies:
    """Latency per timed event id; `done` when all `n` arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ns: list[int | None] = [None] * n
        self.count = 0
        self.duplicates = 0
        self.warm = False
        self.done = asyncio.Event()

    def see(self, ident: int, sent_ns: bytes | None) -> None:
        now = time.monotonic_ns()
        if not self.warm:
            from bench.child import emit

            self.warm = True
            emit(warm=True)
        if ident < 0 or sent_ns is None:
            return
        if self.ns[ident] is not None:
            self.duplicates += 1
            return
        self.ns[ident] = now - int(sent_ns)
        self.count += 1
        if self.count == self.n:
            self.done.set()

    def result(self) -> dict[str, Any]:
        got = sorted(v for v in self.ns if v is not None)

        def pct(p: float) -> float | None:
            return got[min(len(got) - 1, int(p * len(got)))] / 1e6 if got else None

        return {
            "n": self.n,
            "received": self.count,
            "duplicates": self.duplicates,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": got[-1] / 1e6 if got else None,
            "peak_rss_mb": peak_rss_mb(),
        }


async def _raw(topic: str, kafka: dict[str, Any], tally: Latencies) -> None:
    from aiokafka import AIOKafkaConsumer

    validate = Order.model_validate_json
    wanted = EVENT_TYPE.encode()
    consumer = AIOKafkaConsumer(topic, enable_auto_commit=False, **kafka)
    await consumer.start()
    try:
        while not tally.done.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            if not batches:
                continue
            for records in batches.values():
                for r in records:
                    if _header(r.headers, "Event-Type") == wanted:
                        tally.see(validate(r.value).id, _header(r.headers, "sent-ns"))
            await consumer.commit()
    finally:
        await consumer.stop()


def _header(headers: Any, wanted: str) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value  # type: ignore[no-any-return]
    return None


async def _evkafka(topic: str, kafka: dict[str, Any], tally: Latencies) -> None:
    from evkafka import EVKafkaApp, Handler

    handler = Handler()

    @handler.event(EVENT_TYPE)
    async def on_order(order: Order, request: Request) -> None:
        tally.see(order.id, _header(request.message.headers, "sent-ns"))

    app = EVKafkaApp()
    app.add_consumer({"topics": [topic], **kafka}, handler, name="latency")  # type: ignore[typeddict-item]
    await app.start()
    try:
        await tally.done.wait()
    finally:
        await app.stop()


async def consume_timed(job: dict[str, Any]) -> dict[str, Any]:
    """Child side: consume until every timed event arrived (or the timeout)."""
    tally = Latencies(job["n"])
    run = _raw if job["contender"] == "raw-aiokafka" else _evkafka
    error = None
    try:
        async with asyncio.timeout(job["timeout"]):
            await run(job["topic"], job["kafka"], tally)
    except TimeoutError:
        error = f"timed out after {job['timeout']}s with {tally.count} of {tally.n}"
    result = tally.result()
    result["error"] = error
    return result


async def send_at_rate(
    bootstrap: str, topic: str, warm: asyncio.Event, n: int, rate: float
) -> dict[str, Any]:
    """Parent side: warm-up events until `warm`, then `n` events paced at `rate` per second."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        warm_value = order_bytes(0).replace(b'"id":0', b'"id":-1')
        while not warm.is_set():
            await producer.send(topic, warm_value, headers=list(HEADERS))
            try:
                async with asyncio.timeout(0.05):
                    await warm.wait()
            except TimeoutError:
                pass
        values = [order_bytes(i) for i in range(n)]
        started = time.monotonic()
        late = 0.0
        for i, value in enumerate(values):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            headers = [*HEADERS, ("sent-ns", str(time.monotonic_ns()).encode())]
            await producer.send(topic, value, headers=headers)
        await producer.flush()
        return {"rate": rate, "sent": n, "max_send_lag_ms": late * 1000}
    finally:
        await producer.stop()


async def one_run(s: Session, name: str) -> dict[str, Any]:
    topic = await create_topic(s.bootstrap, s.partitions, "bench-latency")
    n = int(s.latency_rate * s.latency_seconds)
    job = {
        "kind": "latency",
        "contender": name,
        "topic": topic,
        # The broker answers a fetch when data arrives or after fetch_max_wait_ms; the test
        # broker seems to wait the full time, so both contenders poll every 5 ms.
        "kafka": {**kafka_options(s.bootstrap, unique("bench-latency")), "fetch_max_wait_ms": 5},
        "n": n,
        "timeout": 60 + s.latency_seconds,
    }
    child = Child(job)
    warm = asyncio.Event()
    await child.start()
    try:
        async with asyncio.timeout(job["timeout"] + 30):
            reading = asyncio.create_task(child.read(lambda note: warm.set()))
            sending = asyncio.create_task(send_at_rate(s.bootstrap, topic, warm, n, s.latency_rate))
            done, _ = await asyncio.wait([reading, sending], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            result, sent = await reading, await sending
    finally:
        child.kill()
    return {**result, **sent}


async def run(s: Session) -> None:
    """Latency of each contender at the same fixed rate, interleaved by round."""
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(s.rounds):
        runs: dict[str, dict[str, Any]] = {}
        for name in s.latency_contenders:
            result = runs[name] = await one_run(s, name)
            result["exact"] = result["received"] == result["n"] and not result["duplicates"]
            if not result["exact"]:
                s.report.fail(
                    f"latency {name} round {r + 1}: {result['received']} of {result['n']} "
                    f"({result['duplicates']} duplicates), error {result['error']}"
                )
            print(
                f"  round {r + 1} {name:18s} p50 {result['p50_ms'] or 0:6.2f} ms  "
                f"p99 {result['p99_ms'] or 0:6.2f} ms",
                flush=True,
            )
        rounds.append(runs)
    s.report.data["latency"] = {"rounds": rounds}
    table = Table(
        f"End-to-end latency at {s.latency_rate:,.0f} events/s for {s.latency_seconds:g} s "
        f"x {s.rounds} rounds (ms, median, min-max)",
        ["contender", "p50", "p90", "p99", "max", "p99 - raw p99", "all received"],
    )
    base = "raw-aiokafka"
    for name in s.latency_contenders:
        gap = [
            runs[name]["p99_ms"] - runs[base]["p99_ms"]
            for runs in rounds
            if base in runs and runs[name]["p99_ms"] is not None and runs[base]["p99_ms"]
        ]
        table.add(
            name,
            spread(column(rounds, name, "p50_ms"), 2),
            spread(column(rounds, name, "p90_ms"), 2),
            spread(column(rounds, name, "p99_ms"), 2),
            spread(column(rounds, name, "max_ms"), 2),
            spread(gap, 2) if name != base and gap else "-",
            f"{sum(1 for runs in rounds if runs[name]['exact'])}/{len(rounds)} runs",
        )
    table.notes.append(
        "Producer (the parent) -> broker -> consumer (a child process); latency = endpoint "
        "start - send time, one monotonic clock. fetch_max_wait_ms=5 for both."
    )
    s.report.table(table)
