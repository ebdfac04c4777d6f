"""What metrics and tracing cost a consumer: evkafka-pydantic with and without them.

The events carry a W3C `traceparent` besides `Event-Type`, one in 100 sampled upstream (a
head-sampling producer); the SDK set-up records those and only those, as the SDK's default
sampler does. Same runs and checks as the consume section; ratios to the plain stack.
"""

from __future__ import annotations

import statistics

from bench.consume import interleaved
from bench.report import Table, column, ratios, spread
from bench.session import Session
from bench.topics import orders_topic

PLAIN = "evkafka-pydantic"
LABELS = {
    PLAIN: "plain stack",
    "evkafka-metrics": "+ metrics",
    "evkafka-observed": "+ metrics + tracing (API, no SDK)",
    "evkafka-observed-sdk-off": "+ metrics + tracing (SDK, recording nothing)",
    "evkafka-observed-sdk": "+ metrics + tracing (SDK, 1% sampled)",
}
#: One event in this many is sampled upstream.
SAMPLED_EVERY = 100


async def run(s: Session) -> None:
    n = s.n
    topic = await orders_topic(s.bootstrap, n, s.partitions, traced_every=SAMPLED_EVERY)
    names = s.observability_contenders
    rounds = await interleaved(s, "observability", names, lambda name: (topic, n))
    s.report.data["observability"] = {"rounds": rounds}
    table = Table(
        f"Observability: {n:,} events x {s.rounds} rounds, {s.partitions} partitions, "
        f"traceparent on each, 1 in {SAMPLED_EVERY} sampled (median, min-max)",
        ["set-up", "msgs/s", f"x {PLAIN}", "CPU µs/msg", "+CPU µs/msg", "exactly once each"],
    )
    for name in names:
        extra = [
            runs[name]["cpu_us_per_msg"] - runs[PLAIN]["cpu_us_per_msg"]
            for runs in rounds
            if runs[name]["cpu_us_per_msg"] and runs[PLAIN]["cpu_us_per_msg"]
        ]
        table.add(
            f"{LABELS[name]} ({name})",
            spread(column(rounds, name, "msgs_per_s")),
            spread(ratios(rounds, name, PLAIN, "msgs_per_s"), 2),
            spread(column(rounds, name, "cpu_us_per_msg"), 1),
            f"{statistics.median(extra):+.1f}" if extra and name != PLAIN else "-",
            f"{sum(1 for runs in rounds if runs[name]['exact'])}/{len(rounds)} runs",
        )
    table.notes.append(
        "Metrics: `Metrics().middleware()`; tracing: `TracingMiddleware`, without an SDK "
        "(context carried on, no spans), with the SDK installed and a sampler that records "
        "nothing, or with the SDK's default ParentBased sampler and a batch processor whose "
        "exporter drops the spans (their cost, not I/O's)."
    )
    s.report.table(table)
