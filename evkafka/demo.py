"""`evkafka demo`: the quickstart service on an embedded broker, fed a stream of sample orders.

It runs `examples/quickstart.py` from the source checkout, produces orders at a steady
rate (one of them malformed, which the service dead-letters), prints live progress (events
handled per type, rate, lag) and stops cleanly on Ctrl-C or after `duration` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from evkafka.app import EVKafkaApp
from evkafka.config import ConsumerConfig, topic_names
from evkafka.errors import ConfigError
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorEvent, ErrorPolicy
from evkafka.producer import EVKafkaProducer
from evkafka.types import MessageApp

QUICKSTART = "examples.quickstart"
#: The malformed record is the n-th one sent (early, so even a short run shows it).
MALFORMED_AT = 25
MALFORMED_VALUE = b'{"id": 25, "amount": '
#: How long to wait, after producing stopped, for the service to catch up.
DRAIN_S = 5.0
PARTITIONS = 4


def load_quickstart() -> ModuleType:
    """`examples/quickstart.py` of the source checkout evkafka runs from."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "examples" / "quickstart.py").is_file():
        raise ConfigError(
            f"the demo runs examples/quickstart.py from an evkafka source checkout; "
            f"none beside {Path(__file__).resolve().parent}"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(QUICKSTART)


class Progress:
    """What the service finished, as counted by `ProgressLayer`, and what the demo sent."""

    def __init__(self) -> None:
        self.handled: Counter[str] = Counter()
        self.unrouted = 0
        self.skipped = 0
        self.dead_letters: list[str] = []
        self.failure: str | None = None
        self.sent = 0
        self.caught_up = asyncio.Event()
        self.failed = asyncio.Event()
        self.producing = True

    @property
    def done(self) -> int:
        """Records the service is finished with: handled, unrouted, skipped or dead-lettered."""
        return sum(self.handled.values()) + self.unrouted + self.skipped + len(self.dead_letters)

    @property
    def lag(self) -> int:
        """Records sent but not yet finished."""
        return max(0, self.sent - self.done)

    def check_caught_up(self) -> None:
        """Set `caught_up` once producing stopped and every sent record is finished."""
        if not self.producing and self.done >= self.sent:
            self.caught_up.set()


class ProgressLayer:
    """Middleware counting each finished record by event type, and each error-policy outcome."""

    def __init__(self, app: MessageApp, progress: Progress, out: TextIO) -> None:
        self.app = app
        self.progress = progress
        self.out = out

    async def __call__(self, message: Message) -> None:
        await self.app(message)
        progress = self.progress
        if message.endpoint is None:
            progress.unrouted += 1
        else:
            progress.handled[message.event_type or "?"] += 1
        progress.check_caught_up()

    def on_error_event(self, event: ErrorEvent) -> None:
        """Dead letters and stops are printed as they happen; skips are counted."""
        progress = self.progress
        m = event.message
        where = f"{m.topic}[{m.partition}]@{m.offset} ({m.event_type or 'no event type'})"
        text = str(event.error).splitlines() or [""]
        reason = f"{type(event.error).__name__}: {text[0]}" + (" [...]" if len(text) > 1 else "")
        if event.action == "dead-letter":
            line = f"{where} -> dead-letter topic {event.dead_letter_topic!r}: {reason}"
            progress.dead_letters.append(line)
            _print_above_status(self.out, f"  dead-lettered {line}")
        elif event.action == "skip":
            progress.skipped += 1
        elif event.action == "stop":
            progress.failure = f"{where} stopped the service: {reason}"
            progress.failed.set()
        progress.check_caught_up()


def _print_above_status(out: TextIO, line: str) -> None:
    prefix = "\r\x1b[K" if out.isatty() else ""
    print(prefix + line, file=out, flush=True)


def sample_orders(models: ModuleType, seed: int = 7) -> Iterator[tuple[str, Any, str]]:
    """(event type, payload, key) forever: each order is created, mostly paid, then shipped.

    The MALFORMED_AT-th record is truncated JSON labelled OrderCreated.
    """
    rnd = random.Random(seed)
    count = 0
    order_id = 0
    while True:
        order_id += 1
        key = f"order-{order_id}"
        events: list[tuple[str, Any]] = [
            (
                "OrderCreated",
                models.OrderCreated(
                    id=order_id, amount=round(rnd.uniform(5, 500), 2), currency="EUR"
                ),
            )
        ]
        if rnd.random() < 0.9:
            events.append(
                ("OrderPaid", models.OrderPaid(id=order_id, method=rnd.choice(["card", "iban"])))
            )
            if rnd.random() < 0.8:
                events.append(
                    ("OrderShipped", {"id": order_id, "country": rnd.choice(["NL", "DE", "FR"])})
                )
        for event_type, payload in events:
            count += 1
            if count == MALFORMED_AT:
                yield "OrderCreated", MALFORMED_VALUE, "malformed"
                count += 1
            yield event_type, payload, key


async def produce(
    producer: EVKafkaProducer,
    orders: Iterator[tuple[str, Any, str]],
    rate: float,
    progress: Progress,
) -> None:
    """Send at `rate` events per second (catching up on slow ticks) until cancelled."""
    started = time.monotonic()
    try:
        while True:
            due = int((time.monotonic() - started) * rate) + 1
            while progress.sent < due:
                event_type, payload, key = next(orders)
                await producer.send_event(payload, event_type, key=key)
                progress.sent += 1
            await asyncio.sleep(0.05)
    finally:
        progress.producing = False


def status_line(progress: Progress, elapsed: float, rate: float) -> str:
    """One line of live progress."""
    kinds = " ".join(f"{name} {n}" for name, n in sorted(progress.handled.items()))
    return (
        f"  {elapsed:5.1f}s  handled {sum(progress.handled.values())} ({kinds or 'none yet'})"
        f"  dead-lettered {len(progress.dead_letters)}  {rate:6.0f}/s  lag {progress.lag}"
    )


async def show_progress(progress: Progress, out: TextIO, interval: float = 1.0) -> None:
    """Print the status every `interval` seconds: one rewritten line on a terminal."""
    started = last_at = time.monotonic()
    last_done = 0
    tty = out.isatty()
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        done = progress.done
        line = status_line(progress, now - started, (done - last_done) / (now - last_at))
        last_done, last_at = done, now
        print(("\r\x1b[K" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)


async def read_dead_letters(bootstrap_servers: str, topic: str, expected: int) -> list[Any]:
    """The records of `topic`, from the start, once `expected` arrived (or after 10 s)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while len(records) < expected:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        records.extend(batch)
    finally:
        await consumer.stop()
    return records


class Topics:
    """Creates the demo's topics (replicated up to 3 times); deletes them again on request."""

    def __init__(self, bootstrap_servers: str, names: dict[str, int]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.names = names

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        return admin

    async def create(self) -> None:
        """Create every topic, replicated as often as the cluster has brokers (at most 3)."""
        admin = await self._admin()
        try:
            brokers = len((await admin.describe_cluster())["brokers"])
            replication = max(1, min(3, brokers))
            await admin.create_topics(
                [NewTopic(name, n, replication) for name, n in self.names.items()]
            )
        finally:
            await admin.close()

    async def delete(self) -> None:
        """Delete every topic again."""
        admin = await self._admin()
        try:
            await admin.delete_topics(list(self.names))
        finally:
            await admin.close()


def build_service(
    quickstart: ModuleType, bootstrap_servers: str, progress: Progress, out: TextIO, embedded: bool
) -> tuple[EVKafkaApp, str, str]:
    """The quickstart's handler and policy behind a counting layer: (app, topic, DLT topic)."""
    spec = next(iter(quickstart.app.consumers.values()))
    policy = spec.error_policy or ErrorPolicy(on_failure="dead-letter")
    if embedded:  # a fresh broker: the quickstart's own names
        topic, group = topic_names(spec.settings)[0], spec.settings["group_id"]
    else:  # never touch a real cluster's topics: fresh names, deleted afterwards
        run_id = uuid.uuid4().hex[:8]
        topic, group = f"evkafka-demo-orders-{run_id}", f"evkafka-demo-{run_id}"
    dead_letter_topic = policy.dead_letter_topic_for(topic, group, "orders")
    config: dict[str, Any] = {
        **spec.config,
        "topics": [topic],
        "bootstrap_servers": bootstrap_servers,
        "group_id": group,
        "auto_offset_reset": "earliest",
        # The embedded broker joins a group in about half the session timeout.
        "session_timeout_ms": 2000 if embedded else 6000,
        "heartbeat_interval_ms": 400 if embedded else 1500,
        "auto_commit_interval_ms": 500,
    }
    app = EVKafkaApp(middleware=[Middleware(ProgressLayer, progress=progress, out=out)])
    app.add_consumer(cast(ConsumerConfig, config), spec.handler, name="orders", error_policy=policy)
    print(
        f"service: {QUICKSTART} consuming {topic!r} ({PARTITIONS} partitions) as group "
        f"{group!r}; dead letters go to {dead_letter_topic!r}",
        file=out,
    )
    return app, topic, dead_letter_topic


async def feed(
    producer: EVKafkaProducer,
    quickstart: ModuleType,
    progress: Progress,
    out: TextIO,
    rate: float,
    duration: float | None,
    stop: asyncio.Event,
    hurry: asyncio.Event,
) -> None:
    """Produce and show progress until `stop`, a failure or `duration`; then let it catch up."""
    producing = asyncio.create_task(produce(producer, sample_orders(quickstart), rate, progress))
    showing = asyncio.create_task(show_progress(progress, out))
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(progress.failed.wait())]
    try:
        await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        producing.cancel()
        await asyncio.wait([producing])
        await producer.stop()
        progress.check_caught_up()
        if not progress.failed.is_set():
            waits += [
                asyncio.create_task(progress.caught_up.wait()),
                asyncio.create_task(hurry.wait()),
            ]
            await asyncio.wait(waits[2:], timeout=DRAIN_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [producing, showing, *waits]:
            task.cancel()


async def report(
    progress: Progress, elapsed: float, bootstrap_servers: str, dead_letter_topic: str, out: TextIO
) -> None:
    """The final counts, and what the dead-letter topic holds, read back from the broker."""
    _print_above_status(out, status_line(progress, elapsed, progress.done / elapsed))
    if progress.failure:
        print(f"the service stopped: {progress.failure}", file=out)
    print(
        f"stopped after {elapsed:.1f}s: sent {progress.sent}, finished {progress.done}, "
        f"lag {progress.lag}",
        file=out,
    )
    if not progress.dead_letters:
        return
    dead = await read_dead_letters(bootstrap_servers, dead_letter_topic, len(progress.dead_letters))
    print(f"dead-letter topic {dead_letter_topic!r} holds {len(dead)} record(s):", file=out)
    for record in dead:
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        print(
            f"  key {record.key!r} value {record.value!r}: "
            f"{headers.get('evkafka-dlt-error-type')} from "
            f"{headers.get('evkafka-dlt-original-topic')}"
            f"[{headers.get('evkafka-dlt-original-partition')}]"
            f"@{headers.get('evkafka-dlt-original-offset')}",
            file=out,
        )


async def run_demo(
    bootstrap_servers: str,
    *,
    duration: float | None = None,
    rate: float = 200.0,
    embedded: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    """Run the quickstart service against `bootstrap_servers` and feed it; the exit code."""
    if rate <= 0:
        raise ConfigError(f"rate must be a positive number of events per second, not {rate!r}")
    if duration is not None and duration <= 0:
        raise ConfigError(f"duration must be a positive number of seconds, not {duration!r}")
    quickstart = load_quickstart()
    progress = Progress()
    app, topic, dead_letter_topic = build_service(
        quickstart, bootstrap_servers, progress, out, embedded
    )
    topics = Topics(bootstrap_servers, {topic: PARTITIONS, dead_letter_topic: 1})
    await topics.create()
    print(
        f"producing {rate:g} orders/s (record #{MALFORMED_AT} is malformed JSON); "
        + (f"stopping after {duration:g}s" if duration else "Ctrl-C stops"),
        file=out,
        flush=True,
    )
    producer = EVKafkaProducer(
        {"bootstrap_servers": bootstrap_servers, "topic": topic, "linger_ms": 5}, name="demo"
    )
    stop, hurry = asyncio.Event(), asyncio.Event()
    restore = _on_interrupt(stop, hurry)
    started = time.monotonic()
    try:
        await app.start()
        await producer.start()
        await feed(producer, quickstart, progress, out, rate, duration, stop, hurry)
        await app.stop()
        await report(
            progress, time.monotonic() - started, bootstrap_servers, dead_letter_topic, out
        )
    finally:
        await producer.stop()
        await app.stop()
        restore()
        if not embedded:
            try:
                await topics.delete()
            except Exception as exc:
                print(f"could not delete the demo topics {list(topics.names)}: {exc}", file=out)
    out.flush()
    return 1 if progress.failure else 0


def _on_interrupt(stop: asyncio.Event, hurry: asyncio.Event) -> Callable[[], None]:
    """Ctrl-C (or SIGTERM) stops producing; a second one stops waiting for the service."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    def restore() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return restore


def demo(
    bootstrap_servers: str | None = None,
    duration: float | None = None,
    rate: float = 200.0,
    out: TextIO = sys.stdout,
) -> int:
    """Start the embedded broker unless `bootstrap_servers` is given, then run the demo."""
    quiet = {
        "examples.quickstart": logging.WARNING,
        "evkafka": logging.ERROR,
        "aiokafka": logging.CRITICAL,
    }
    previous = {name: logging.getLogger(name).level for name in quiet}
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    try:
        if bootstrap_servers:
            print(f"evkafka demo against {bootstrap_servers}", file=out)
            return asyncio.run(
                run_demo(bootstrap_servers, duration=duration, rate=rate, embedded=False, out=out)
            )
        from evkafka.devbroker import DevBroker

        with DevBroker() as broker:
            print(
                f"evkafka demo: embedded Kafka-protocol broker (Tansu, in memory) on "
                f"{broker.bootstrap_servers}",
                file=out,
            )
            return asyncio.run(
                run_demo(broker.bootstrap_servers, duration=duration, rate=rate, out=out)
            )
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)
