"""`python -m bench`: evkafka side by side with raw aiokafka and FastStream (`make bench`).

Starts its own broker unless --bootstrap is given. Sections: chain (in process),
consume, produce, latency; --scaling runs the multi-process group instead;
--smoke is the tiny run CI uses to keep the harness working.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import chain_overhead, consume, lagging, latency, observability, producers, scaling
from bench.contenders import CONTENDERS
from bench.producers import VARIANTS
from bench.report import Report, Table, ratios
from bench.session import Session

SECTIONS = ("chain", "consume", "lagging", "observability", "produce", "latency")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny run, 1 round, 2 contenders")
    p.add_argument("--scaling", action="store_true", help="1/2/4 processes in one group")
    p.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    p.add_argument("-n", "--events", type=int, help="events per consume run")
    p.add_argument("--rounds", type=int, help="interleaved rounds")
    p.add_argument("--contenders", help=f"comma-separated, of: {', '.join(CONTENDERS)}")
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument("--out", type=Path, help="where results go (default bench/results)")
    args = p.parse_args(argv)
    wrong = [x for x in args.only.split(",") if x and x not in SECTIONS]
    if wrong:
        p.error(f"unknown section(s) {', '.join(wrong)}; choose from {', '.join(SECTIONS)}")
    unknown = [c for c in (args.contenders or "").split(",") if c and c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.events is not None and args.events < 10:
        p.error("--events must be at least 10")
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def session(args: argparse.Namespace, bootstrap: str, broker_pid: int | None) -> Session:
    smoke = args.smoke
    contenders = (
        args.contenders.split(",")
        if args.contenders
        else ["raw-aiokafka", "evkafka-pydantic"]
        if smoke
        else list(CONTENDERS)
    )
    default_n = 2_000 if smoke else 200_000 if args.scaling else 100_000
    settings = Session(
        bootstrap=bootstrap,
        broker_pid=broker_pid,
        report=Report({}),
        n=args.events or default_n,
        rounds=args.rounds or (1 if smoke else 2 if args.scaling else 5),
        contenders=contenders,
        producer_variants=["raw-aiokafka", "evkafka-sender"] if smoke else list(VARIANTS),
        n_produce=500 if smoke else 50_000,
        n_produce_awaited=20 if smoke else 1_000,
        latency_rate=200 if smoke else 1_000,
        latency_seconds=1 if smoke else 5,
        latency_contenders=["evkafka-pydantic"] if smoke else list(latency.CONTENDERS),
        chain_n=1_000 if smoke else 20_000,
        chain_repeats=2 if smoke else 20,
    )
    if smoke:
        settings.observability_contenders = ["evkafka-pydantic", "evkafka-observed-sdk"]
    settings.report.settings = {
        "mode": "smoke" if smoke else "scaling" if args.scaling else "full",
        "events per consume run": settings.n,
        "rounds": settings.rounds,
        "broker": "external " + bootstrap if args.bootstrap else "embedded Tansu (memory)",
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
        "python": sys.version.split()[0],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return settings


def targets(s: Session) -> None:
    """The issue's targets, as ratios measured in this run."""
    data: dict[str, Any] = s.report.data
    table = Table("Targets", ["target", "measured", "met"])

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    consume_rounds = data.get("consume", {}).get("rounds", [])
    ratio = median(
        [
            r["evkafka-pydantic"]["msgs_per_s"] / r["raw-aiokafka"]["msgs_per_s"]
            for r in consume_rounds
            if "evkafka-pydantic" in r
            and "raw-aiokafka" in r
            and r["evkafka-pydantic"]["msgs_per_s"]
            and r["raw-aiokafka"]["msgs_per_s"]
        ]
    )
    if ratio is not None:
        table.add("consume >= 0.85x raw loop", f"{ratio:.2f}x", "yes" if ratio >= 0.85 else "no")
    chain = data.get("chain", {})
    if chain:
        worst = max(row["overhead_us"] for row in chain.values())
        table.add(
            "framework overhead <= 5 µs/msg",
            f"{worst:.2f} µs (worst type)",
            "yes" if worst <= 5 else "no",
        )
    observed_rounds = data.get("observability", {}).get("rounds", [])
    observed = median(ratios(observed_rounds, "evkafka-observed", "evkafka-pydantic", "msgs_per_s"))
    if observed is not None:
        table.add(
            "metrics + tracing >= 0.8x plain stack",
            f"{math.floor(observed * 100) / 100:.2f}x",  # 0.796 reads 0.79x, as judged
            "yes" if observed >= 0.8 else "no",
        )
    for name, label in [
        ("evkafka-observed-sdk-off", "SDK installed, recording nothing"),
        ("evkafka-observed-sdk", "SDK recording 1%"),
    ]:
        with_sdk = median(ratios(observed_rounds, name, "evkafka-pydantic", "msgs_per_s"))
        # Reported beside the target, not judged: they add what the SDK spends per record.
        if with_sdk is not None:
            table.add(f"  the same, {label}", f"{math.floor(with_sdk * 100) / 100:.2f}x", "-")
    produce_rounds = data.get("produce", {}).get("rounds", [])
    sender = median(
        [
            r["evkafka-sender"]["msgs_per_s"] / r["raw-aiokafka"]["msgs_per_s"]
            for r in produce_rounds
            if "evkafka-sender" in r and "raw-aiokafka" in r
        ]
    )
    if sender is not None:
        table.add(
            "Sender fire-and-forget >= 0.8x raw", f"{sender:.2f}x", "yes" if sender >= 0.8 else "no"
        )
    latency_rounds = data.get("latency", {}).get("rounds", [])
    gap = median(
        [
            r["evkafka-pydantic"]["p99_ms"] - r["raw-aiokafka"]["p99_ms"]
            for r in latency_rounds
            if "evkafka-pydantic" in r
            and "raw-aiokafka" in r
            and r["evkafka-pydantic"]["p99_ms"] is not None
            and r["raw-aiokafka"]["p99_ms"] is not None
        ]
    )
    if gap is not None:
        table.add(
            "latency p99 within a few ms of raw", f"{gap:+.2f} ms", "yes" if gap <= 3 else "no"
        )
    if table.rows:
        s.report.table(table)


async def main(args: argparse.Namespace, s: Session) -> None:
    if args.scaling:
        await scaling.run(s)
        return
    only = [x for x in args.only.split(",") if x]
    runners = {
        "chain": chain_overhead.run,
        "consume": consume.run,
        "lagging": lagging.run,
        "observability": observability.run,
        "produce": producers.run,
        "latency": latency.run,
    }
    for name in SECTIONS:
        if name in only:
            print(f"\n== {name}", flush=True)
            await runners[name](s)
    targets(s)


def cli(argv: list[str]) -> int:
    args = parse(argv)
    with ExitStack() as stack:
        if args.bootstrap:
            bootstrap, pid = args.bootstrap, None
        else:
            from evkafka.devbroker import DevBroker

            broker = stack.enter_context(DevBroker())
            assert broker.process is not None
            bootstrap, pid = broker.bootstrap_servers, broker.process.pid
        s = session(args, bootstrap, pid)
        print("evkafka benchmark:", ", ".join(f"{k} {v}" for k, v in s.report.settings.items()))
        asyncio.run(main(args, s))
    s.report.settings["load average at end"] = f"{os.getloadavg()[0]:.2f}"
    path = s.report.save(args.out)
    print(f"\nresults: {path} (and .json)")
    if s.report.failures:
        print(f"{len(s.report.failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
