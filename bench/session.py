"""What every benchmark section shares: the broker, the settings, the report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from bench.report import Report

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of another process (the broker), from /proc; None if unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def kafka_options(bootstrap: str, group: str, session_timeout_ms: int = 2000) -> dict[str, Any]:
    """The aiokafka group options every consumer contender gets, identical for all."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(100, session_timeout_ms // 5),
    }


@dataclass
class Session:
    bootstrap: str
    broker_pid: int | None
    report: Report
    n: int
    rounds: int
    contenders: list[str]
    producer_variants: list[str]
    n_produce: int
    n_produce_awaited: int
    latency_rate: float
    latency_seconds: float
    latency_contenders: list[str]
    chain_n: int
    chain_repeats: int
    scaling_workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    scaling_contenders: list[str] = field(
        default_factory=lambda: ["raw-aiokafka", "evkafka-pydantic"]
    )
    partitions: int = 4
    observability_contenders: list[str] = field(
        default_factory=lambda: [
            "evkafka-pydantic",
            "evkafka-metrics",
            "evkafka-observed",
            "evkafka-observed-sdk-off",
            "evkafka-observed-sdk",
        ]
    )

    def child_timeout(self, n: int, min_rate: float = 500) -> float:
        """Seconds a run of `n` messages may take before it counts as hung."""
        return 60 + n / min_rate

    def broker_cpu(self) -> float | None:
        return process_cpu_seconds(self.broker_pid)
