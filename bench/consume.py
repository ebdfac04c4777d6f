"""Consumer throughput: every contender drains the same pre-produced topic, interleaved by round."""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Callable
from typing import Any

from bench.contenders import CONTENDERS
from bench.processes import run_child
from bench.report import Table, column, ratios, spread
from bench.session import Session, kafka_options
from bench.topics import committed_total, orders_topic, unique

BASE = "raw-aiokafka"


def available(names: list[str]) -> tuple[list[str], list[str]]:
    """(runnable, skipped): FastStream contenders need the `bench` extra."""
    has_faststream = importlib.util.find_spec("faststream") is not None
    runnable = [n for n in names if has_faststream or not CONTENDERS[n][1]]
    return runnable, [n for n in names if n not in runnable]


async def one_run(s: Session, name: str, topic: str, n: int) -> dict[str, Any]:
    group = unique("bench-group")
    job = {
        "kind": "consume",
        "contender": name,
        "topic": topic,
        "kafka": kafka_options(s.bootstrap, group),
        "n": n,
        "timeout": s.child_timeout(n),
    }
    broker_before = s.broker_cpu()
    result = await run_child(job, job["timeout"] + 30)
    broker_after = s.broker_cpu()
    result["committed"] = await committed_total(s.bootstrap, group, topic, s.partitions)
    result["exact"] = (
        result["error"] is None
        and result["distinct"] == n
        and result["handled"] == n
        and result["committed"] == n
    )
    if broker_before is not None and broker_after is not None:
        result["broker_cpu_us_per_msg"] = (broker_after - broker_before) / n * 1e6
    return result


async def interleaved(
    s: Session, section: str, names: list[str], topic_for: Callable[[str], tuple[str, int]]
) -> list[dict[str, dict[str, Any]]]:
    """Each contender on its (topic, events) in turn, round after round; failures reported."""
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(s.rounds):
        runs: dict[str, dict[str, Any]] = {}
        for name in names:
            topic, n = topic_for(name)
            result = runs[name] = await one_run(s, name, topic, n)
            if not result["exact"]:
                s.report.fail(
                    f"{section} {name} round {r + 1}: handled {result['handled']} "
                    f"(distinct {result['distinct']}) of {n}, committed {result['committed']}, "
                    f"error {result['error']}"
                )
            rate = result["msgs_per_s"]
            print(
                f"  round {r + 1} {name:18s} "
                + (f"{rate:>9,.0f} msgs/s" if rate else "        - msgs/s")
                + f"  {'exact' if result['exact'] else 'NOT EXACT'}",
                flush=True,
            )
        rounds.append(runs)
    return rounds


async def run(s: Session) -> None:
    names, skipped = available(s.contenders)
    topics: dict[bool, tuple[str, int]] = {
        False: (await orders_topic(s.bootstrap, s.n, s.partitions), s.n)
    }
    if any(CONTENDERS[n][2] for n in names):
        small = max(1000, s.n // 10)
        topics[True] = (await orders_topic(s.bootstrap, small, s.partitions), small)
    rounds = await interleaved(s, "consume", names, lambda name: topics[CONTENDERS[name][2]])
    s.report.data["consume"] = {"rounds": rounds, "skipped": skipped}
    table = Table(
        f"Consume: {s.n:,} events x {s.rounds} rounds, {s.partitions} partitions (median, min-max)",
        [
            "contender",
            "msgs/s",
            f"x {BASE}",
            "CPU µs/msg",
            "CPU busy",
            "broker CPU µs/msg",
            "peak RSS MB",
            "all N in s",
            "exactly once each",
        ],
    )
    for name in names:
        n = topics[CONTENDERS[name][2]][1]
        exact = sum(1 for runs in rounds if runs[name]["exact"])
        table.add(
            name + (f" ({n:,} events)" if n != s.n else ""),
            spread(column(rounds, name, "msgs_per_s")),
            spread(ratios(rounds, name, BASE, "msgs_per_s"), 2) if BASE in names else "-",
            spread(column(rounds, name, "cpu_us_per_msg"), 1),
            spread(column(rounds, name, "cpu_busy"), 2),
            spread(column(rounds, name, "broker_cpu_us_per_msg"), 1),
            spread(column(rounds, name, "peak_rss_mb")),
            spread(column(rounds, name, "all_in_s"), 2),
            f"{exact}/{len(rounds)} runs",
        )
    for name in names:
        if name.startswith("evkafka") and BASE in names:
            extra = [
                runs[name]["cpu_us_per_msg"] - runs[BASE]["cpu_us_per_msg"]
                for runs in rounds
                if runs[name]["cpu_us_per_msg"] and runs[BASE]["cpu_us_per_msg"]
            ]
            if extra:
                table.notes.append(
                    f"{name}: {statistics.median(extra):+.1f} µs/msg CPU against {BASE} "
                    f"(median of within-round differences)"
                )
    table.notes.append(
        "msgs/s and CPU over the steady window, from the 10% to the 90% distinct event; "
        "CPU busy: CPU seconds per second in that window (1.00: never waiting on fetches); "
        "all N in s: first to last event, wind-down included. "
        "Each run: a fresh process and consumer group; exact = every id handled once "
        "and the group's committed offsets cover all events."
    )
    if skipped:
        table.notes.append(f"skipped (install the bench extra): {', '.join(skipped)}")
    s.report.table(table)
