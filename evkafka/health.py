"""Liveness and readiness of running consumers, judged from what the loops last did."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from evkafka.consumer import Consumer

#: A fetch loop that has not polled for this long is considered stuck.
POLL_STALL_S = 15.0


@dataclass(frozen=True)
class Verdict:
    """A probe's answer: `ok`, or the problems that make it fail."""

    ok: bool
    problems: list[str]


def liveness(consumers: Iterable[Consumer], now: float | None = None) -> Verdict:
    """Alive: every fetch loop runs and polls, and no endpoint overran its time limit."""
    now = time.monotonic() if now is None else now
    problems: list[str] = []
    for c in consumers:
        if c.error is not None:
            problems.append(f"consumer {c.name!r} failed: {c.error}")
            continue
        if not c.fetching:
            problems.append(f"consumer {c.name!r} is not fetching")
        elif c.last_poll is not None and now - c.last_poll > POLL_STALL_S:
            problems.append(f"consumer {c.name!r} has not polled for {now - c.last_poll:.0f}s")
        for w in c.workers.values():
            if w.busy_since is not None and now - w.busy_since > c.exec_limit:
                problems.append(
                    f"consumer {c.name!r}: endpoint on {w.tp.topic}[{w.tp.partition}] busy for "
                    f"{now - w.busy_since:.1f}s (limit {c.exec_limit:g}s)"
                )
    return Verdict(not problems, problems)


def readiness(consumers: Iterable[Consumer]) -> Verdict:
    """Ready: every consumer is connected and has joined its group (got an assignment)."""
    problems: list[str] = []
    for c in consumers:
        if not c.fetching:
            problems.append(f"consumer {c.name!r} is not fetching")
        elif c.group_id is not None and c.assigned_at is None:
            problems.append(f"consumer {c.name!r} has no partition assignment yet")
    return Verdict(not problems, problems)
