"""The benchmark harness keeps working: a tiny run, exact counts, no timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import ratios, spread

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.broker
def test_smoke_run_handles_every_event_exactly_once(bootstrap: str, tmp_path: Path) -> None:
    done = bench("--smoke", "--bootstrap", bootstrap, "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["failures"] == []
    (consume_round,) = result["consume"]["rounds"]
    assert set(consume_round) == {"raw-aiokafka", "evkafka-pydantic"}
    for run in consume_round.values():
        n = run["n"]
        assert (run["handled"], run["distinct"], run["duplicates"], run["committed"]) == (
            n,
            n,
            0,
            n,
        )
        assert run["error"] is None and run["exact"]
    (lagging_round,) = result["lagging"]["rounds"]
    for run in lagging_round.values():
        assert run["exact"] and run["committed"] == run["n"]
    (observed_round,) = result["observability"]["rounds"]
    assert set(observed_round) == {"evkafka-pydantic", "evkafka-observed-sdk"}
    for run in observed_round.values():
        assert run["exact"] and run["committed"] == run["n"]
    (produce_round,) = result["produce"]["rounds"]
    for run in produce_round.values():
        assert run["exact"] and run["delivered"] == run["n"] + 100
    (latency_round,) = result["latency"]["rounds"]
    for run in latency_round.values():
        assert run["received"] == run["n"] == run["sent"] and run["duplicates"] == 0
    assert set(result["chain"]) == {"pydantic", "msgspec", "dict"}
    assert (tmp_path / "latest.md").read_text().startswith("## evkafka benchmark")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contenders", "nope"], "unknown contender(s) nope; choose from raw-aiokafka"),
        (["--only", "consume,bogus"], "unknown section(s) bogus; choose from chain"),
        (["--events", "3"], "--events must be at least 10"),
        (["--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_bad_arguments_fail_before_starting_anything(args: list[str], message: str) -> None:
    done = bench(*args, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr


def test_ratios_are_taken_within_each_round() -> None:
    rounds = [
        {"raw": {"rate": 100.0}, "ev": {"rate": 90.0}},
        {"raw": {"rate": 50.0}, "ev": {"rate": 50.0}},
        {"raw": {"rate": None}, "ev": {"rate": 10.0}},
    ]
    assert ratios(rounds, "ev", "raw", "rate") == [0.9, 1.0]
    assert spread([0.9, 1.0, 0.95], 2) == "0.95 (0.90-1.00)"
    assert spread([None]) == "-"
