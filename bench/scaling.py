"""Scaling: 1, 2, 4 worker processes in one consumer group on an 8-partition topic.

The processes report (distinct ids, when, CPU) every 20 ms; summing them gives the
group's throughput over the steady window (10% to 100% of the events). The broker's
and the whole machine's CPU over the same window show where the ceiling is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.processes import Child
from bench.report import Table, spread
from bench.session import Session, kafka_options, machine_busy
from bench.topics import orders_topic, unique

PARTITIONS = 8


class GroupProgress:
    """Merges the children's progress notes into the group's count over time."""

    def __init__(self, workers: int, n: int) -> None:
        self.n = n
        self.counts = [0] * workers
        self.cpu = [0.0] * workers
        self.last_at = [0.0] * workers
        self.start: tuple[float, int, float] | None = None
        self.machine_start: tuple[float, float] | None = None
        self.end_cpu = self.end_at = 0.0
        self.done = asyncio.Event()

    def on_note(self, i: int) -> Any:
        def note(fields: dict[str, Any]) -> None:
            if "progress" not in fields:
                return
            self.counts[i] = fields["progress"]
            self.cpu[i] = fields["cpu"]
            self.last_at[i] = fields["at"]
            total = sum(self.counts)
            if self.start is None and total >= self.n // 10:
                self.start = (fields["at"], total, sum(self.cpu))
                self.machine_start = machine_busy()
            if total >= self.n and not self.done.is_set():
                self.end_cpu = sum(self.cpu)
                self.end_at = max(self.last_at)
                self.done.set()

        return note


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
    error = None
    try:
        async with asyncio.timeout(job["timeout"]):
            waiting = asyncio.create_task(progress.done.wait())
            await asyncio.wait([waiting, *readers], return_when=asyncio.FIRST_COMPLETED)
            if not progress.done.is_set():
                error = "a worker exited early"
    except TimeoutError:
        error = f"timed out with {sum(progress.counts)} of {s.n}"
    machine_end = machine_busy()
    broker_after = s.broker_cpu()
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
    if progress.start is not None and progress.machine_start is not None and progress.done.is_set():
        at_start, count_start, cpu_start = progress.start
        at_end = progress.end_at
        steady = s.n - count_start
        out["msgs_per_s"] = steady / (at_end - at_start) if at_end > at_start else None
        out["cpu_us_per_msg"] = (progress.end_cpu - cpu_start) / steady * 1e6
        busy0, total0 = progress.machine_start
        busy1, total1 = machine_end
        out["machine_busy_pct"] = (
            (busy1 - busy0) / (total1 - total0) * 100 if total1 > total0 else None
        )
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
