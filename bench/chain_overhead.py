"""Per-message cost of evkafka's inbound chain, in process, no broker.

For each payload type: the full default chain (commit -> error policy -> event type ->
decoding -> router -> endpoint) on a Message built as the consumer engine builds it,
against the same work done by hand (read the type header, decode, await the endpoint).
The difference is the framework's own overhead per message.
Run alone: python -m bench.chain_overhead [N]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.processes import run_child
from bench.report import Table
from bench.session import Session
from bench.workload import EVENT_TYPE, HEADERS, Order, OrderStruct, order_bytes
from evkafka import Handler
from evkafka.codec import JSON
from evkafka.message import Message
from evkafka.offsets import OffsetTracker
from evkafka.stack import build_chain

PAYLOAD = order_bytes(123456)
TYPES: dict[str, Any] = {"pydantic": Order, "msgspec": OrderStruct, "dict": dict}


class TrackerCommitter:
    """Marks offsets done in one OffsetTracker, as the consumer engine does per partition."""

    def __init__(self) -> None:
        self.tracker = OffsetTracker()

    def mark_done(self, message: Message) -> None:
        self.tracker.mark_done(message.offset)


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


def measure_type(payload_type: Any, n: int, repeats: int) -> dict[str, float]:
    handler = Handler()

    async def endpoint(event: Any) -> None:
        pass

    endpoint.__annotations__["event"] = payload_type
    handler.event(EVENT_TYPE)(endpoint)
    committer = TrackerCommitter()
    chain = build_chain(handler, None, committer)
    state: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    offset = 0

    async def through_chain() -> None:
        nonlocal offset
        committer.tracker.track(range(offset, offset + n))
        for i in range(offset, offset + n):
            await chain(
                Message("orders", 0, i, None, PAYLOAD, HEADERS, 0, state, "c", "g", None, None)
            )
        offset += n

    decode = JSON.decoder(payload_type)
    wanted = EVENT_TYPE.encode()

    async def by_hand() -> None:
        for _ in range(n):
            for name, value in HEADERS:
                if name == "Event-Type":
                    if value == wanted:
                        await endpoint(decode(PAYLOAD))
                    break

    try:
        chain_us, hand_us = _best_us(
            [
                lambda: loop.run_until_complete(through_chain()),
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
        ["payload type", "default chain", "decode + endpoint by hand", "framework overhead"],
    )
    for label, row in result.items():
        table.add(
            label,
            f"{row['chain_us']:.2f}",
            f"{row['decode_and_endpoint_us']:.2f}",
            f"{row['overhead_us']:.2f}",
        )
    table.notes.append(
        "Chain: Message built as the consumer builds it -> commit -> error policy -> event "
        "type -> decoding -> router -> endpoint (no-op). By hand: read the type header, "
        "decode, await the endpoint."
    )
    s.report.table(table)
