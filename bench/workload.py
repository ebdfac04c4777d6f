"""The benchmark's events and the tally every contender reports to, identical for all of them."""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import datetime

import msgspec
import pydantic

EVENT_TYPE = "OrderCreated"
HEADERS = [("Event-Type", EVENT_TYPE.encode())]


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
    created_at: datetime


class CustomerStruct(msgspec.Struct):
    id: int
    email: str
    country: str


class OrderStruct(msgspec.Struct):
    id: int
    name: str
    amount: float
    paid: bool
    tags: list[str]
    customer: CustomerStruct
    created_at: datetime


def order(ident: int) -> dict[str, object]:
    """Event number `ident` as a dict: ~200 B of JSON, every field type, a nested object."""
    return {
        "id": ident,
        "name": f"order-{ident:08d}",
        "amount": round(10 + (ident % 9973) / 7, 2),
        "paid": ident % 3 == 0,
        "tags": ["retail", "eu", "priority" if ident % 5 == 0 else "standard"],
        "customer": {"id": ident % 1000, "email": f"c{ident % 1000}@example.com", "country": "NL"},
        "created_at": "2026-12-04T20:00:00Z",
    }


_encode = msgspec.json.Encoder().encode


def order_bytes(ident: int) -> bytes:
    return _encode(order(ident))


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Tally:
    """Counts handled events by id; times the steady window from 10% to 90% of `n` distinct.

    The window leaves out the start (group join, first fetches) and the wind-down, when
    partitions of a finite topic run dry one after another. Every contender calls
    `see(order.id)` once per handled event, so its cost is the same for all. `done` is
    set when all `n` distinct ids were seen.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.handled = 0
        self.distinct = 0
        self.out_of_range = 0
        self.start_mark = max(1, n // 10)
        self.end_mark = max(self.start_mark + 1, n - n // 10)
        self.window_start = self.window_end = self.first_at = self.last_at = 0.0
        self.cpu_start = self.cpu_end = 0.0
        self.done = asyncio.Event()

    def see(self, ident: int) -> None:
        self.handled += 1
        if not 0 <= ident < self.n:
            self.out_of_range += 1
            return
        if self.seen[ident]:
            return
        self.seen[ident] = 1
        self.distinct = distinct = self.distinct + 1
        if distinct == self.start_mark:
            self.window_start = time.perf_counter()
            self.cpu_start = cpu_seconds()
        elif distinct == self.end_mark:
            self.window_end = time.perf_counter()
            self.cpu_end = cpu_seconds()
        if distinct == 1:
            self.first_at = time.perf_counter()
        if distinct == self.n:
            self.last_at = time.perf_counter()
            self.done.set()

    def result(self) -> dict[str, object]:
        steady = self.end_mark - self.start_mark
        elapsed = self.window_end - self.window_start
        complete = self.done.is_set() and elapsed > 0
        return {
            "n": self.n,
            "handled": self.handled,
            "distinct": self.distinct,
            "duplicates": self.handled - self.distinct - self.out_of_range,
            "out_of_range": self.out_of_range,
            "msgs_per_s": steady / elapsed if complete else None,
            "cpu_us_per_msg": (self.cpu_end - self.cpu_start) / steady * 1e6 if complete else None,
            # CPU seconds per wall second in the window: near 1.0 means CPU-bound, lower
            # means the consumer waited (on fetches, on the broker) part of the time.
            "cpu_busy": (self.cpu_end - self.cpu_start) / elapsed if complete else None,
            "all_in_s": self.last_at - self.first_at if complete else None,
            "peak_rss_mb": peak_rss_mb(),
        }
