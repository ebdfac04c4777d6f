"""Per-message cost of evkafka's inbound path, in process, no broker.

For each payload type: a partition worker of a real (unstarted) consumer handles records
as the fetch loop hands them over (Message built per record -> commit and error policy ->
event type -> decoding -> router -> endpoint, offsets marked), against the same work done
by hand on the same records (read the type header, decode, await the endpoint). The
difference is the framework's own overhead per message.
Run alone: python -m bench.chain_overhead [N]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.processes import run_child
from bench.report import Table
from bench.session import Session
from bench.workload import EVENT_TYPE, HEADERS, Order, OrderStruct, order_bytes
from evkafka import Handler
from evkafka.codec import JSON
from evkafka.config import consumer_settings
from evkafka.consumer import Consumer, PartitionWorker
from evkafka.stack import build_chain

PAYLOAD = order_bytes(123456)
TYPES: dict[str, Any] = {"pydantic": Order, "msgspec": OrderStruct, "dict": dict}
TP = TopicPartition("orders", 0)


def _best_us(runs: list[Callable[[], None]], n: int, repeats: int) -> list[float]:
    """The fastest of `repeats` alternated runs of each, per message: on a shared machine
    the fastest run is the least disturbed one, and alternating exposes all to the same."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - started)
    return [b / n * 1e6 for b in best]


class Countdown:
    """Sets `done` when the endpoint has seen the run's last record; reset before each run."""

    def __init__(self, n: int) -> None:
        self.n = self.left = n
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.left -= 1
        if not self.left:
            self.done.set()

    def reset(self) -> None:
        self.left = self.n
        self.done.clear()


def through_worker(
    handler: Handler, middleware: list[Any] | None, records: list[Any], countdown: Countdown
) -> Callable[[], Awaitable[None]]:
    """A coroutine function: a fresh partition worker of an unstarted consumer handles
    `records` as the fetch loop hands them over, until the endpoint has counted them all."""
    settings = consumer_settings({"topics": ["orders"], "bootstrap_servers": "unused:9092"})
    consumer = Consumer("bench", settings, lambda c: build_chain(handler, middleware, c), {})

    async def run() -> None:
        countdown.reset()
        worker = consumer.workers[TP] = PartitionWorker(consumer, TP)
        worker.feed(records)
        await countdown.done.wait()
        worker.stop()
        await worker.task

    return run


def measure_type(payload_type: Any, n: int, repeats: int) -> dict[str, float]:
    handler = Handler()
    countdown = Countdown(n)
    hit = countdown.hit

    async def endpoint(event: Any) -> None:
        hit()

    endpoint.__annotations__["event"] = payload_type
    handler.event(EVENT_TYPE)(endpoint)
    headers = tuple(HEADERS)
    records = [
        ConsumerRecord("orders", 0, i, 0, 0, None, PAYLOAD, None, 0, len(PAYLOAD), headers)
        for i in range(n)
    ]
    by_worker = through_worker(handler, None, records, countdown)

    decode = JSON.decoder(payload_type)
    wanted = EVENT_TYPE.encode()

    async def by_hand() -> None:
        countdown.reset()
        for r in records:
            for name, value in r.headers:
                if name == "Event-Type":
                    if value == wanted:
                        await endpoint(decode(r.value))
                    break

    loop = asyncio.new_event_loop()
    try:
        chain_us, hand_us = _best_us(
            [
                lambda: loop.run_until_complete(by_worker()),
                lambda: loop.run_until_complete(by_hand()),
            ],
            n,
            repeats,
        )
    finally:
        loop.close()
    return {
        "chain_us": chain_us,
        "decode_and_endpoint_us": hand_us,
        "overhead_us": chain_us - hand_us,
    }


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """µs/msg per payload type; `job` gives `n` messages per run and `repeats` runs."""
    n, repeats = job.get("n", 20_000), job.get("repeats", 20)
    return {label: measure_type(tp, n, repeats) for label, tp in TYPES.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"{n} messages x 20 runs, {len(PAYLOAD)} B payload; µs/msg, fastest run")
    for label, row in measure({"n": n}).items():
        print(
            f"{label:9s} chain {row['chain_us']:6.2f}  by hand {row['decode_and_endpoint_us']:6.2f}"
            f"  overhead {row['overhead_us']:6.2f}"
        )


if __name__ == "__main__":
    main()


async def run(s: Session) -> None:
    """The in-process figure, measured in a fresh child process like everything else."""
    result = await run_child({"kind": "chain", "n": s.chain_n, "repeats": s.chain_repeats}, 300)
    s.report.data["chain"] = result
    table = Table(
        f"Inbound chain in process, no broker: {s.chain_n:,} messages x {s.chain_repeats} "
        f"runs, fastest (µs/msg)",
        ["payload type", "partition worker", "decode + endpoint by hand", "framework overhead"],
    )
    for label, row in result.items():
        table.add(
            label,
            f"{row['chain_us']:.2f}",
            f"{row['decode_and_endpoint_us']:.2f}",
            f"{row['overhead_us']:.2f}",
        )
    table.notes.append(
        "Partition worker: records as the fetch loop hands them over -> Message -> commit "
        "and error policy -> event type -> decoding -> router -> endpoint, offset marked. "
        "By hand, on the same records: read the type header, decode, await the endpoint."
    )
    s.report.table(table)
