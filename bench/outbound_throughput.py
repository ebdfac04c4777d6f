"""Producer throughput: evkafka's EVKafkaProducer and Sender against a raw aiokafka producer.

Fire-and-forget sends N events then flushes (best of 3 runs); awaited sends N_WAIT events one at a time,
each waiting for the broker. Every variant encodes the same dict with msgspec and sends
an `Event-Type` header, so the difference is evkafka's own overhead.
Uses EVKAFKA_BENCH_BOOTSTRAP if set, else an embedded Tansu broker.
Run: python bench/outbound_throughput.py [N] [N_WAIT]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

import msgspec
from aiokafka import AIOKafkaProducer

from evkafka import EVKafkaProducer, Sender
from evkafka.devbroker import DevBroker

PAYLOAD = {"id": 123456, "name": "order-123456", "amount": 99.95, "tags": ["a", "b", "c"]}
HEADERS = [("Event-Type", b"OrderCreated")]


ROUNDS = 3


async def timed(label: str, n: int, run: Callable[[], Awaitable[None]]) -> float:
    """Best of ROUNDS runs (the machine is shared; the best run is the least disturbed)."""
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await run()
        best = max(best, n / (time.perf_counter() - start))
    print(f"{label:<38} {best:>10,.0f} msgs/s")
    return best


async def main(bootstrap: str, n: int, n_wait: int) -> None:
    def topic() -> str:
        return f"bench-{uuid.uuid4().hex[:8]}"

    encode = msgspec.json.Encoder().encode
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await raw.start()
    sender = Sender()

    @sender.event("OrderCreated")
    async def send_order(order: dict) -> None: ...

    try:
        warm = topic()
        for _ in range(200):
            await raw.send(warm, encode(PAYLOAD), headers=HEADERS)
        await raw.flush()

        async def raw_forget() -> None:
            t = topic()
            for _ in range(n):
                await raw.send(t, encode(PAYLOAD), headers=list(HEADERS))
            await raw.flush()

        async def raw_wait() -> None:
            t = topic()
            for _ in range(n_wait):
                await raw.send_and_wait(t, encode(PAYLOAD), headers=list(HEADERS))

        async with EVKafkaProducer({"bootstrap_servers": bootstrap}) as producer:
            await producer.send_event_and_wait(PAYLOAD, "OrderCreated", topic=warm)

            async def ev_forget() -> None:
                t = topic()
                for _ in range(n):
                    await producer.send_event(PAYLOAD, "OrderCreated", topic=t)
                await producer.flush()

            async def ev_wait() -> None:
                t = topic()
                for _ in range(n_wait):
                    await producer.send_event_and_wait(PAYLOAD, "OrderCreated", topic=t)

            async def sender_forget() -> None:
                producer.topic = topic()
                for _ in range(n):
                    await send_order(PAYLOAD)
                await producer.flush()

            producer.topic = warm
            sender.bind(producer)
            print(f"fire-and-forget, {n} events")
            base = await timed("  raw aiokafka send()", n, raw_forget)
            ours = await timed("  EVKafkaProducer.send_event", n, ev_forget)
            via = await timed("  Sender endpoint", n, sender_forget)
            print(f"  ratio evkafka/raw: {ours / base:.2f} (producer), {via / base:.2f} (sender)")
            print(f"awaited, {n_wait} events one at a time")
            base = await timed("  raw aiokafka send_and_wait()", n_wait, raw_wait)
            ours = await timed("  EVKafkaProducer.send_event_and_wait", n_wait, ev_wait)
            print(f"  ratio evkafka/raw: {ours / base:.2f}")
            sender.unbind(producer)
    finally:
        await raw.stop()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    n_wait = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    with ExitStack() as stack:
        bootstrap = os.environ.get("EVKAFKA_BENCH_BOOTSTRAP") or (
            stack.enter_context(DevBroker()).bootstrap_servers
        )
        asyncio.run(main(bootstrap, n, n_wait))
