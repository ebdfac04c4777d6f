"""Custom middleware: time every message, log the slow ones, keep per-type statistics.

A middleware is a class taking the next layer (`app`) first and its options after it, with
`async __call__(message)`; it is declared as `Middleware(cls, **options)` and built once per
consumer. evkafka adds its event-type and decoding layers inside it, so this layer sees
`message.event_type` once the inner call returns.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

from evkafka import EVKafkaApp, Message, Middleware
from evkafka.middleware.errors import ErrorEvent
from evkafka.types import MessageApp

log = logging.getLogger(__name__)


class TimingStats:
    """What the layer measured: messages and seconds per event type, retries seen."""

    def __init__(self) -> None:
        self.count: Counter[str | None] = Counter()
        self.seconds: Counter[str | None] = Counter()
        self.retries = 0


class TimingMiddleware:
    """Measures decoding + endpoint time per message; warns above `slow_ms`."""

    def __init__(self, app: MessageApp, stats: TimingStats, slow_ms: float = 100.0) -> None:
        self.app = app
        self.stats = stats
        self.slow_s = slow_ms / 1000

    async def __call__(self, message: Message) -> None:
        started = time.perf_counter()
        try:
            await self.app(message)
        finally:
            elapsed = time.perf_counter() - started
            self.stats.count[message.event_type] += 1
            self.stats.seconds[message.event_type] += elapsed
            if elapsed > self.slow_s:
                log.warning(
                    "slow %s at %s[%d]@%d: %.1f ms",
                    message.event_type,
                    message.topic,
                    message.partition,
                    message.offset,
                    elapsed * 1000,
                )

    def on_error_event(self, event: ErrorEvent) -> None:
        """The error-policy layer calls this for every retry, dead-letter, skip and stop."""
        if event.action == "retry":
            self.stats.retries += 1


stats = TimingStats()

app = EVKafkaApp(
    config={
        "topics": ["orders"],
        "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        "group_id": "timed",
    },
    middleware=[Middleware(TimingMiddleware, stats=stats, slow_ms=50)],
)


@app.event("OrderCreated")
async def order_created(order: dict) -> None:
    """Fast: nothing to do."""


@app.event("ReportRequested")
def report_requested(request: dict) -> None:
    """Slow: a blocking call in a plain `def` runs in the thread pool."""
    time.sleep(request.get("seconds", 0.1))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run()
