"""Whole-process behaviour: kill -9, group membership, SIGTERM (the recorder app in a subprocess)."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.brokerkit import committed, create_topic, event, produce, unique
from tests.integration.processes import RecorderProcess


def values(p: RecorderProcess) -> list[int]:
    return [v for _, _, v in p.lines()]


async def test_kill_9_then_restart_loses_nothing(bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(bootstrap, partitions=2)
    n = 400
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i, partition=i % 2) for i in range(n)])
    env = {"BOOTSTRAP": bootstrap, "TOPIC": topic, "GROUP": unique("g"), "SLOW_MS": "5"}
    first = RecorderProcess(tmp_path / "out.txt", **env)
    try:
        await first.wait_for(lambda: len(first.lines()) >= 100)
    finally:
        first.kill()
    handled_before = len(first.lines())
    assert handled_before < n, "the kill must land mid-stream"
    second = RecorderProcess(tmp_path / "out.txt", **{**env, "SLOW_MS": "0"})
    try:
        await second.wait_for(lambda: set(values(second)) == set(range(n)))
    finally:
        second.kill()
    counts = Counter(values(second))
    duplicates = sum(c - 1 for c in counts.values())
    # Duplicates only from the uncommitted window: at most ~one commit interval of work.
    assert duplicates < handled_before


async def test_two_processes_split_partitions_and_survivor_takes_over(bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(bootstrap, partitions=4)
    n = 400
    env = {"BOOTSTRAP": bootstrap, "TOPIC": topic, "GROUP": unique("g"), "SLOW_MS": "10"}
    a = RecorderProcess(tmp_path / "a.txt", **env)
    b = RecorderProcess(tmp_path / "b.txt", **env)
    try:
        await produce(bootstrap, topic, [event(b'{"i": %d}' % i, partition=i % 4) for i in range(n)])
        await a.wait_for(lambda: len(a.lines()) >= 20 and len(b.lines()) >= 20)
        parts_a = {p for p, _, _ in a.lines()}
        parts_b = {p for p, _, _ in b.lines()}
        assert parts_a and parts_b and not parts_a & parts_b, (parts_a, parts_b)
        a.kill()
        await b.wait_for(lambda: set(values(a)) | set(values(b)) == set(range(n)), timeout=60)
        assert {p for p, _, _ in b.lines()} == {0, 1, 2, 3}
    finally:
        a.kill()
        b.kill()


async def test_sigterm_finishes_in_flight_work_commits_and_exits_0(bootstrap: str, tmp_path: Path) -> None:
    topic = await create_topic(bootstrap, partitions=1)
    group = unique("g")
    await produce(bootstrap, topic, [event(b'{"i": %d}' % i) for i in range(200)])
    p = RecorderProcess(tmp_path / "out.txt", BOOTSTRAP=bootstrap, TOPIC=topic, GROUP=group, SLOW_MS="300")
    try:
        await p.wait_for(lambda: len(p.lines("start")) >= 2)
        p.process.send_signal(signal.SIGTERM)
        assert await p.exit_code(timeout=20) == 0, p.stderr()
    finally:
        p.kill()
    started, done = p.lines("start"), p.lines("done")
    assert len(started) == len(done), "the in-flight endpoint finished before exit"
    assert await committed(bootstrap, group, topic, 1) == {0: len(done)}
