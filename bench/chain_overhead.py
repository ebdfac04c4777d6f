"""Per-message cost of the inbound chain, in process, no broker.

Reports µs/msg for: building a Message and running the default chain to a no-op endpoint,
the same endpoint's decode alone, and so the framework's own overhead beyond decoding.
Run: python bench/chain_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec
import pydantic

from evkafka import Handler
from evkafka.codec import JSON
from evkafka.message import Message
from evkafka.stack import build_chain
from evkafka.testclient import InMemoryCommitter

PAYLOAD = (
    b'{"id": 123456, "name": "order-123456", "amount": 99.95, "paid": true, '
    b'"tags": ["a", "b", "c"], "customer": {"id": 42, "email": "someone@example.com", '
    b'"country": "NL"}, "created_at": "2026-12-04T20:00:00Z"}'
)
HEADERS = (("Event-Type", b"OrderCreated"), ("trace", b"x" * 16))


class Customer(pydantic.BaseModel):
    id: int
    email: str
    country: str


class Order(pydantic.BaseModel):
    id: int
    name: str
    amount: float
    paid: bool
    tags: list[str]
    customer: Customer
    created_at: str


class CustomerS(msgspec.Struct):
    id: int
    email: str
    country: str


class OrderS(msgspec.Struct):
    id: int
    name: str
    amount: float
    paid: bool
    tags: list[str]
    customer: CustomerS
    created_at: str


async def chain_run(payload_type: type, n: int) -> float:
    handler = Handler()

    async def noop(event: payload_type) -> None:  # type: ignore[valid-type]
        pass

    noop.__annotations__["event"] = payload_type
    handler.event("OrderCreated")(noop)
    chain = build_chain(handler, None, InMemoryCommitter())
    state: dict[str, object] = {}
    start = time.perf_counter()
    for i in range(n):
        await chain(Message("orders", 0, i, b"k", PAYLOAD, HEADERS, 0, state=state))
    return (time.perf_counter() - start) / n * 1e6


def decode_only(payload_type: type, n: int) -> float:
    decode = JSON.decoder(payload_type)
    start = time.perf_counter()
    for _ in range(n):
        decode(PAYLOAD)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"{n} messages, {len(PAYLOAD)} B payload; µs/msg (best of 3)")
    for label, tp in (("pydantic", Order), ("msgspec", OrderS), ("dict", dict)):
        chain = min(asyncio.run(chain_run(tp, n)) for _ in range(3))
        dec = min(decode_only(tp, n) for _ in range(3))
        print(f"{label:9s} chain {chain:6.2f}  decode {dec:6.2f}  overhead {chain - dec:6.2f}")


if __name__ == "__main__":
    main()
