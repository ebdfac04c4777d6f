"""The worker supervisor: backoff, restarts, graceful and forced stops (child processes, no broker)."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys

import pytest

from evkafka.app import REPEAT_SIGNAL_WINDOW_S
from evkafka.errors import ConfigError
from evkafka.supervisor import Backoff, Supervisor, describe_exit
from tests.integration.commandline import Command


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0, stable_after_s=60.0)
    assert [backoff.after_crash(1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.after_crash(61.0) == 0.5  # it ran a minute: a fresh crash, not a loop
    assert backoff.after_crash(0.1) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"initial_s": 0}, "0 < initial_s <= max_s"),
        ({"initial_s": 5, "max_s": 1}, "0 < initial_s <= max_s"),
        ({"stable_after_s": -1}, "stable_after_s must be positive"),
    ],
)
def test_bad_backoff_settings_are_rejected(kwargs: dict[str, float], error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        Backoff(**kwargs)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_worker_count_must_be_a_positive_integer(workers: object) -> None:
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        Supervisor(lambda i: ["true"], workers)  # type: ignore[arg-type]


def test_exit_descriptions() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(None) == "could not be started"


async def test_a_crashing_worker_is_restarted_with_growing_delays() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    fifth_start = asyncio.Event()

    def crash(index: int) -> list[str]:
        starts.append(loop.time())
        if len(starts) == 5:
            fifth_start.set()
        return [sys.executable, "-c", "import sys; sys.exit(3)"]

    supervisor = Supervisor(crash, 1, backoff=lambda: Backoff(initial_s=0.05, max_s=0.2))
    serving = asyncio.create_task(supervisor.serve(install_signal_handlers=False))
    async with asyncio.timeout(20):
        await fifth_start.wait()
        supervisor.request_stop()
        code = await serving
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Each gap is the process's life plus the backoff: never a hot loop.
    for gap, delay in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True):
        assert gap >= delay
    assert supervisor.restarts == 4
    assert code == 1 or supervisor.exit_codes == {0: -signal.SIGTERM}  # 5th: exit 3 or stopped


async def test_an_unstartable_worker_is_retried_with_backoff_too() -> None:
    calls = 0
    third = asyncio.Event()

    def missing(index: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        return ["/nonexistent/evkafka-worker"]

    supervisor = Supervisor(missing, 1, backoff=lambda: Backoff(initial_s=0.01, max_s=0.02))
    serving = asyncio.create_task(supervisor.serve(install_signal_handlers=False))
    async with asyncio.timeout(10):
        await third.wait()
        supervisor.request_stop()
        assert await serving == 1
    assert supervisor.exit_codes == {0: None}


def up_pids(lines: list[str], word: str = "up") -> set[int]:
    found = {line.split()[1] for line in lines if line.startswith(f"{word} ")}
    assert all(pid.isdigit() for pid in found), lines
    return {int(pid) for pid in found}


async def test_sigterm_stops_every_worker_gracefully_and_exits_0() -> None:
    parent = await Command.start("-m", "tests.integration.apps.supervised", "2")
    try:
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 2)
        parent.send(signal.SIGTERM)
        parent.send(signal.SIGINT)  # at once, as when a process and its group are signalled
        assert await parent.exit_code(timeout=20) == 0, parent.log
        assert any("stop requested again at once" in line for line in parent.lines)
    finally:
        await parent.kill()
    assert up_pids(parent.lines, "bye") == up_pids(parent.lines)
    assert "all 2 workers stopped gracefully" in parent.lines[-1]


async def test_a_killed_worker_is_replaced() -> None:
    parent = await Command.start("-m", "tests.integration.apps.supervised", "2")
    try:
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 2)
        victim = min(up_pids(parent.lines))
        os.kill(victim, signal.SIGKILL)
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 3)
        assert any(f"(pid {victim}) was killed by SIGKILL" in line for line in parent.lines)
        parent.send(signal.SIGTERM)
        assert await parent.exit_code(timeout=20) == 0, parent.log
    finally:
        await parent.kill()
    assert up_pids(parent.lines, "bye") == up_pids(parent.lines) - {victim}


async def test_a_second_signal_kills_workers_that_ignore_the_first() -> None:
    parent = await Command.start("-m", "tests.integration.apps.supervised", "1", STUBBORN="1")
    try:
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 1)
        parent.send(signal.SIGTERM)
        await parent.wait_for_line("stopping 1 workers gracefully")
        await asyncio.sleep(REPEAT_SIGNAL_WINDOW_S + 0.1)  # a repeat sooner is the same request
        parent.send(signal.SIGTERM)
        assert await parent.exit_code(timeout=10) == 130, parent.log
    finally:
        await parent.kill()
    assert "forced stop" in parent.lines[-1]


async def test_workers_that_do_not_stop_in_time_are_killed() -> None:
    parent = await Command.start(
        "-m", "tests.integration.apps.supervised", "1", STUBBORN="1", STOP_TIMEOUT_S="0.5"
    )
    try:
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 1)
        parent.send(signal.SIGTERM)
        assert await parent.exit_code(timeout=10) == 1, parent.log
    finally:
        await parent.kill()
    assert "did not stop within 0.5s and were killed" in parent.lines[-1]


async def test_workers_stop_when_the_supervisor_is_killed() -> None:
    parent = await Command.start("-m", "tests.integration.apps.supervised", "2")
    try:
        await parent.wait_until(lambda lines: len(up_pids(lines)) == 2)
        parent.process.kill()
        # The workers share the stderr pipe: their goodbyes arrive after the parent died.
        await parent.wait_until(lambda lines: up_pids(lines, "bye") == up_pids(lines), 10)
    finally:
        await parent.kill()
