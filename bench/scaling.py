"""Scaling: 1, 2, 4 worker processes in one consumer group on an 8-partition topic.

Each process records (distinct ids, when, CPU) every n/2000 ids; merged, they give the
group's throughput over the steady window (10% to 90% of the events). The broker's and
the whole machine's CPU over the same window show where the ceiling is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.processes import Child
from bench.report import Table, spread
from bench.session import Session, kafka_options, machine_busy
from bench.topics import orders_topic, unique

PARTITIONS = 8


class GroupProgress:
    """Sums the children's streamed counts, to know when the group has handled every event."""

    def __init__(self, workers: int, n: int) -> None:
        self.n = n
        self.counts = [0] * workers
        self.done = asyncio.Event()

    def on_note(self, i: int) -> Any:
        def note(fields: dict[str, Any]) -> None:
            if "progress" in fields:
                self.counts[i] = fields["progress"]
                if sum(self.counts) >= self.n:
                    self.done.set()

        return note


def steady_window(marks: list[list[list[float]]], n: int) -> tuple[float, float, int, float] | None:
    """(start, end, events, CPU seconds) between the group's 10% and 90% events.

    `marks` holds each child's (distinct, monotonic time, CPU) checkpoints; merged in
    time order they give the group's count at every checkpoint.
    """
    events = sorted(
        (at, i, count, cpu) for i, child in enumerate(marks) for count, at, cpu in child
    )
    counts = [0] * len(marks)
    cpus = [child[0][2] if child else 0.0 for child in marks]
    start: tuple[float, int, float] | None = None
    for at, i, count, cpu in events:
        counts[i], cpus[i] = int(count), cpu
        total = sum(counts)
        if start is None and total >= n // 10:
            start = (at, total, sum(cpus))
        elif start is not None and total >= n - n // 10:
            return start[0], at, total - start[1], sum(cpus) - start[2]
    return None


async def _sample_machine(into: list[tuple[float, float, float]]) -> None:
    """(monotonic time, busy CPU s, total CPU s) of the machine every 50 ms."""
    while True:
        into.append((time.monotonic(), *machine_busy()))
        await asyncio.sleep(0.05)


async def one_run(s: Session, name: str, topic: str, workers: int) -> dict[str, Any]:
    group = unique("bench-scale")
    job = {
        "kind": "consume",
        "contender": name,
        "topic": topic,
        # A longer session: the broker then waits longer for all members before assigning.
        "kafka": kafka_options(s.bootstrap, group, session_timeout_ms=6000),
        "n": s.n,
        "timeout": s.child_timeout(s.n),
        "shared": True,
    }
    children = [Child(job) for _ in range(workers)]
    progress = GroupProgress(workers, s.n)
    for child in children:
        await child.start()
    readers = [asyncio.create_task(c.read(progress.on_note(i))) for i, c in enumerate(children)]
    broker_before = s.broker_cpu()
    busy: list[tuple[float, float, float]] = []
    sampler = asyncio.create_task(_sample_machine(busy))
    error = None
    try:
        async with asyncio.timeout(job["timeout"]):
            waiting = asyncio.create_task(progress.done.wait())
            await asyncio.wait([waiting, *readers], return_when=asyncio.FIRST_COMPLETED)
            if not progress.done.is_set():
                error = "a worker exited early"
    except TimeoutError:
        error = f"timed out with {sum(progress.counts)} of {s.n}"
    broker_after = s.broker_cpu()
    sampler.cancel()
    for child in children:
        child.tell("stop")
    try:
        async with asyncio.timeout(60):
            results = await asyncio.gather(*readers)
    finally:
        for child in children:
            child.kill()
    seen = bytearray(s.n)
    handled = 0
    for result in results:
        handled += result["handled"]
        for i, flag in enumerate(bytes.fromhex(result["seen"])):
            if flag:
                seen[i] = 1
    distinct = sum(seen)
    out: dict[str, Any] = {
        "workers": workers,
        "handled": handled,
        "distinct": distinct,
        "lost": s.n - distinct,
        "duplicates": handled - distinct,
        "per_worker": [r["handled"] for r in results],
        "error": error or next((r["error"] for r in results if r["error"]), None),
    }
    window = steady_window([r["marks"] for r in results], s.n)
    if window is not None and window[1] > window[0]:
        start, end, events, cpu = window
        out["msgs_per_s"] = events / (end - start)
        out["cpu_us_per_msg"] = cpu / events * 1e6
        inside = [b for b in busy if start <= b[0] <= end]
        if len(inside) >= 2 and inside[-1][2] > inside[0][2]:
            (_, busy0, total0), (_, busy1, total1) = inside[0], inside[-1]
            out["machine_busy_pct"] = (busy1 - busy0) / (total1 - total0) * 100
    if broker_before is not None and broker_after is not None:
        out["broker_cpu_us_per_msg"] = (broker_after - broker_before) / s.n * 1e6
    return out


async def run(s: Session) -> None:
    topic = await orders_topic(s.bootstrap, s.n, PARTITIONS)
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(s.rounds):
        runs: dict[str, dict[str, Any]] = {}
        for workers in s.scaling_workers:
            for name in s.scaling_contenders:
                result = runs[f"{name}/{workers}"] = await one_run(s, name, topic, workers)
                if result["lost"] or result["error"]:
                    s.report.fail(
                        f"scaling {name} x{workers} round {r + 1}: lost {result['lost']}, "
                        f"error {result['error']}"
                    )
                rate = result.get("msgs_per_s")
                print(
                    f"  round {r + 1} {name:18s} x{workers} "
                    + (f"{rate:>9,.0f} msgs/s" if rate else "        - msgs/s")
                    + f"  per worker {result['per_worker']}  dup {result['duplicates']}",
                    flush=True,
                )
        rounds.append(runs)
    s.report.data["scaling"] = {"rounds": rounds}
    table = Table(
        f"Scaling: {s.n:,} events, {PARTITIONS} partitions, one group, x{s.rounds} rounds",
        [
            "contender",
            "workers",
            "msgs/s",
            "x 1 worker",
            "CPU µs/msg (all workers)",
            "broker CPU µs/msg",
            "machine busy %",
            "duplicates",
        ],
    )
    for name in s.scaling_contenders:
        for workers in s.scaling_workers:
            key, one = f"{name}/{workers}", f"{name}/{s.scaling_workers[0]}"
            speedup = [
                runs[key]["msgs_per_s"] / runs[one]["msgs_per_s"]
                for runs in rounds
                if runs[key].get("msgs_per_s") and runs[one].get("msgs_per_s")
            ]
            table.add(
                name,
                workers,
                spread([runs[key].get("msgs_per_s") for runs in rounds]),
                spread(speedup, 2),
                spread([runs[key].get("cpu_us_per_msg") for runs in rounds], 1),
                spread([runs[key].get("broker_cpu_us_per_msg") for runs in rounds], 1),
                spread([runs[key].get("machine_busy_pct") for runs in rounds]),
                spread([runs[key]["duplicates"] for runs in rounds]),
            )
    s.report.table(table)
