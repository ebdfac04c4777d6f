"""One lagging partition beside caught-up ones: every event on partition 0 of 4.

The other three partitions have nothing to fetch, so a fetch request that carries only them
waits `fetch_max_wait_ms` at the broker; a consumer that leaves the busy partition out of
its requests (backpressure) must not sit behind such a wait. Same contenders and checks as
the consume section.
"""

from __future__ import annotations

from bench.consume import BASE, interleaved
from bench.report import Table, column, ratios, spread
from bench.session import Session
from bench.topics import orders_topic

CONTENDERS = ["raw-aiokafka", "evkafka-pydantic"]


async def run(s: Session) -> None:
    n = max(1000, s.n // 2)
    topic = await orders_topic(s.bootstrap, n, s.partitions, filled=1)
    rounds = await interleaved(s, "lagging", CONTENDERS, lambda name: (topic, n))
    s.report.data["lagging"] = {"rounds": rounds}
    table = Table(
        f"One lagging partition: {n:,} events all on partition 0 of {s.partitions}, the "
        f"others caught up (median, min-max)",
        ["contender", "msgs/s", f"x {BASE}", "CPU busy", "exactly once each"],
    )
    for name in CONTENDERS:
        table.add(
            name,
            spread(column(rounds, name, "msgs_per_s")),
            spread(ratios(rounds, name, BASE, "msgs_per_s"), 2),
            spread(column(rounds, name, "cpu_busy"), 2),
            f"{sum(1 for runs in rounds if runs[name]['exact'])}/{len(rounds)} runs",
        )
    table.notes.append(
        "evkafka pauses the full partition (backpressure); the raw loop never does. CPU busy "
        "well below 1.00 would mean fetches sat behind broker waits."
    )
    s.report.table(table)
