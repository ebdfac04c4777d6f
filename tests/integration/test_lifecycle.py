"""The app's life against the real broker: signals, graceful timeout, lifespan failures, exit
codes and last log lines, `evkafka run --workers`, and the health probes."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from evkafka import ErrorPolicy, EVKafkaApp, Handler
from evkafka.app import REPEAT_SIGNAL_WINDOW_S
from tests.brokerkit import committed, consumer_config, create_topic, event, produce, unique
from tests.integration.commandline import Command

APP = "tests.integration.apps.lifecycle:app"


def reports(lines: list[str], word: str) -> list[tuple[int, int, int]]:
    """(pid, partition, offset) of the app's `handling`/`handled` lines."""
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[0] == word:
            rows.append((int(parts[1]), int(parts[2]), int(parts[3])))
    return rows


async def run_app(bootstrap: str, topic: str, group: str, *args: str, **env: str) -> Command:
    return await Command.evkafka(
        "run", APP, *args, BOOTSTRAP=bootstrap, TOPIC=topic, GROUP=group, **env
    )


# -- signals and exit codes, through `evkafka run` ------------------------------


async def test_sigterm_lets_in_flight_endpoints_finish_commits_and_exits_0(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i, partition=i % 2) for i in range(6)])
    app = await run_app(bootstrap, topic, group, SLOW_MS="1000")
    try:
        await app.wait_until(lambda lines: {p for _, p, _ in reports(lines, "handling")} == {0, 1})
        app.send(signal.SIGTERM)
        app.send(signal.SIGINT)  # at once, as when a process and its group are signalled
        assert await app.exit_code(timeout=20) == 0, app.log
        assert any("again at once: the same stop request" in line for line in app.lines)
    finally:
        await app.kill()
    handling, handled = reports(app.lines, "handling"), reports(app.lines, "handled")
    assert sorted(handled) == sorted(handling), "every started endpoint finished"
    done = {p: sum(1 for _, q, _ in handled if q == p) for p in (0, 1)}
    assert await committed(bootstrap, group, topic, 2) == done
    last_handled = max(i for i, line in enumerate(app.lines) if line.startswith("handled "))
    assert app.lines.index("lifespan down") > last_handled, "the lifespan ends after consumers"
    assert app.lines[-1].endswith("evkafka app exiting with code 0: stopped gracefully")


async def test_a_second_sigterm_exits_at_once_with_130(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": 0}')])
    app = await run_app(bootstrap, topic, group, SLOW_MS="60000")
    try:
        await app.wait_for_line("handling ")
        app.send(signal.SIGTERM)
        await app.wait_for_line("SIGTERM received: shutting down gracefully")
        await asyncio.sleep(REPEAT_SIGNAL_WINDOW_S + 0.1)  # a repeat sooner is the same request
        started = time.monotonic()
        app.send(signal.SIGTERM)
        assert await app.exit_code(timeout=10) == 130, app.log
        assert time.monotonic() - started < 5
    finally:
        await app.kill()
    assert "second SIGTERM: exiting now with code 130" in app.lines[-1]
    assert reports(app.lines, "handled") == []
    assert await committed(bootstrap, group, topic, 1) == {0: None}


async def test_lifespan_startup_failure_exits_1_and_starts_no_consumer(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": 0}')])
    app = await run_app(bootstrap, topic, group, LIFESPAN_FAIL="startup")
    try:
        assert await app.exit_code(timeout=30) == 1, app.log
    finally:
        await app.kill()
    assert not any("evkafka.consumer" in line for line in app.lines), app.log
    assert "RuntimeError: database unreachable" in app.log  # the traceback is logged
    assert app.lines[-1].endswith(
        "evkafka app exiting with code 1: could not start: "
        "lifespan startup failed: RuntimeError: database unreachable"
    )
    assert await committed(bootstrap, group, topic, 1) == {0: None}


async def test_lifespan_teardown_failure_exits_1_after_committing(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(3)])
    app = await run_app(bootstrap, topic, group, LIFESPAN_FAIL="teardown")
    try:
        await app.wait_until(lambda lines: len(reports(lines, "handled")) == 3)
        app.send(signal.SIGTERM)
        assert await app.exit_code(timeout=20) == 1, app.log
    finally:
        await app.kill()
    assert app.lines[-1].endswith(
        "evkafka app exiting with code 1: shutdown failed: "
        "lifespan teardown failed: RuntimeError: cannot close the pool"
    )
    assert await committed(bootstrap, group, topic, 1) == {0: 3}


# -- in-process: graceful timeout, consumer death -------------------------------


async def test_graceful_timeout_cancels_endpoints_that_overrun_it(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(3)])
    stuck, cancelled = asyncio.Event(), asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict[str, int]) -> None:
        if payload["i"] == 2:
            stuck.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    app = EVKafkaApp(graceful_timeout_ms=300)  # the exec limit stays at its 300 s default
    app.add_consumer(consumer_config(bootstrap, topic, group), handler)
    await app.start()
    try:
        async with asyncio.timeout(30):
            await stuck.wait()
    finally:
        started = time.monotonic()
        await app.stop()
    assert time.monotonic() - started < 5
    assert cancelled.is_set()
    assert await committed(bootstrap, group, topic, 1) == {0: 2}


async def test_a_dead_consumer_exits_1_and_the_last_line_says_which(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    await produce(bootstrap, topic, [event(b'{"i": 0}')])
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict[str, int]) -> None:
        raise RuntimeError("ledger closed")

    app = EVKafkaApp(error_policy=ErrorPolicy(retries=0))
    app.add_consumer(consumer_config(bootstrap, topic), handler, name="billing")
    caplog.set_level(logging.INFO, "evkafka")
    async with asyncio.timeout(30):
        assert await app.serve(install_signal_handlers=False) == 1
    last = caplog.records[-1]
    assert (last.name, last.levelname) == ("evkafka.app", "ERROR")
    assert last.getMessage().startswith(
        "evkafka app exiting with code 1: consumer 'billing' failed:"
    )
    assert "ledger closed" in last.getMessage()


# -- evkafka run --workers 2 -----------------------------------------------------

ASSIGNED = re.compile(r"\[(\d+)\] evkafka\.consumer: consumer 'default' assigned (.*)$")
STARTED = re.compile(r"worker \d+ started \(pid (\d+)\)")


def assignments(lines: list[str]) -> dict[int, set[int]]:
    """Each worker pid's latest partition assignment, from the consumers' log lines."""
    latest: dict[int, set[int]] = {}
    for line in lines:
        found = ASSIGNED.search(line)
        if found:
            latest[int(found[1])] = {int(p) for p in re.findall(r"partition=(\d+)", found[2])}
    return latest


def worker_pids(lines: list[str]) -> list[int]:
    return [int(m[1]) for line in lines if (m := STARTED.search(line))]


def split_between(pids: list[int], since: int = 0) -> Callable[[list[str]], bool]:
    """True once the live `pids` hold disjoint, non-empty shares of the 4 partitions
    (by assignments logged from line `since` on)."""

    def split(lines: list[str]) -> bool:
        latest = assignments(lines[since:])
        shares = [latest.get(pid, set()) for pid in pids]
        return all(shares) and set().union(*shares) == {0, 1, 2, 3} and sum(map(len, shares)) == 4

    return split


async def test_two_workers_split_partitions_and_a_killed_worker_is_restarted(
    bootstrap: str,
) -> None:
    topic = await create_topic(bootstrap, partitions=4)
    group = unique("g")
    supervisor = await run_app(bootstrap, topic, group, "--workers", "2")
    try:
        await supervisor.wait_until(lambda lines: len(worker_pids(lines)) == 2)
        first, second = worker_pids(supervisor.lines)
        await supervisor.wait_until(split_between([first, second]), timeout=60)
        shares = assignments(supervisor.lines)
        await produce(
            bootstrap, topic, [event(b'{"i": %d}' % i, partition=i % 4) for i in range(40)]
        )
        await supervisor.wait_until(lambda lines: len(reports(lines, "handled")) >= 40)
        for pid, partition, _ in reports(supervisor.lines, "handled"):
            assert partition in shares[pid], "each worker handles only its own partitions"

        os.kill(first, signal.SIGKILL)
        await supervisor.wait_for_line(f"(pid {first}) was killed by SIGKILL")
        killed_at = len(supervisor.lines)
        await supervisor.wait_until(lambda lines: len(worker_pids(lines)) == 3)
        replacement = worker_pids(supervisor.lines)[-1]
        await supervisor.wait_until(split_between([second, replacement], killed_at), timeout=60)
        await produce(
            bootstrap, topic, [event(b'{"i": %d}' % i, partition=i % 4) for i in range(40)]
        )
        second_batch = {(p, o) for p in range(4) for o in range(10, 20)}

        def second_batch_handled(lines: list[str]) -> bool:
            return {(p, o) for _, p, o in reports(lines, "handled")} >= second_batch

        # Records the killed worker had not committed may be handled twice; none is lost.
        await supervisor.wait_until(second_batch_handled, timeout=60)
        assert any(pid == replacement for pid, _, _ in reports(supervisor.lines, "handled")), (
            supervisor.log
        )

        supervisor.send(signal.SIGTERM)
        assert await supervisor.exit_code(timeout=30) == 0, supervisor.log
    finally:
        await supervisor.kill()
    assert supervisor.lines[-1].endswith("evkafka supervisor: all 2 workers stopped gracefully")
    assert (
        sum(line.endswith("exiting with code 0: stopped gracefully") for line in supervisor.lines)
        == 2
    )
    for pid in (first, second, replacement):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- health probes over HTTP ---------------------------------------------------


async def probe(app: EVKafkaApp, which: str) -> tuple[int, list[str]]:
    assert app.http_server is not None
    url = f"http://127.0.0.1:{app.http_server.port}/health/{which}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, (await response.json())["problems"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Probe until `check()` holds (the state is observed from outside, like a kubelet)."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


def probed_app(**app_options: Any) -> EVKafkaApp:
    return EVKafkaApp(expose_health=True, http_host="127.0.0.1", http_port=0, **app_options)


async def test_readiness_is_503_before_the_assignment_and_200_after(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    app = probed_app()
    # A longer session widens the join window (the broker waits about half of it).
    config = consumer_config(bootstrap, topic, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    app.add_consumer(config, Handler(), name="orders")
    await app.start()
    try:
        assert await probe(app, "ready") == (
            503,
            ["consumer 'orders' has no partition assignment yet"],
        )
        assert (await probe(app, "live"))[0] == 200

        async def ready() -> bool:
            return (await probe(app, "ready"))[0] == 200

        await eventually(ready)
    finally:
        await app.stop()


async def test_liveness_fails_while_an_endpoint_overruns_its_limit(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    entered, release = asyncio.Event(), asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict[str, int]) -> None:
        entered.set()
        await release.wait()

    app = probed_app()
    app.add_consumer(
        consumer_config(bootstrap, topic, max_endpoint_exec_time_ms=500), handler, name="orders"
    )
    await app.start()
    try:
        assert (await probe(app, "live"))[0] == 200
        await produce(bootstrap, topic, [event(b'{"i": 0}')])
        async with asyncio.timeout(30):
            await entered.wait()

        async def dead() -> bool:
            return (await probe(app, "live"))[0] == 503

        await eventually(dead)
        problems = (await probe(app, "live"))[1]
        assert len(problems) == 1
        assert re.search(rf"endpoint on {topic}\[0\] busy for [\d.]+s \(limit 0.5s\)", problems[0])
        release.set()

        async def alive() -> bool:
            return (await probe(app, "live"))[0] == 200

        await eventually(alive)
    finally:
        release.set()
        await app.stop()


async def test_liveness_fails_when_an_embedded_apps_consumer_died(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict[str, int]) -> None:
        raise RuntimeError("ledger closed")

    app = probed_app(error_policy=ErrorPolicy(retries=0))
    app.add_consumer(consumer_config(bootstrap, topic), handler, name="orders")
    await app.start()  # embedded: no serve() stops the app, the probe must say it
    try:
        await produce(bootstrap, topic, [event(b'{"i": 0}')])

        async def dead() -> bool:
            return (await probe(app, "live"))[0] == 503

        await eventually(dead)
        assert (await probe(app, "live"))[1] == ["consumer 'orders' failed: ledger closed"]
    finally:
        await app.stop()
