"""`evkafka demo` end to end: its own embedded broker, or an existing cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Started from another directory: the demo finds examples/ beside the evkafka package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "evkafka.cli", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def check_output(out: str, topic: str) -> None:
    assert re.search(r"handled \d+ \(OrderCreated \d+ OrderPaid \d+ OrderShipped \d+\)", out)
    assert f"dead-lettered {topic}[" in out and "PayloadDecodeError" in out
    assert f"dead-letter topic '{topic}.DLT' holds 1 record(s):" in out
    assert "key b'malformed'" in out and "evkafka.errors.PayloadDecodeError" in out
    sent, finished = map(int, re.search(r"sent (\d+), finished (\d+), lag 0", out).groups())  # type: ignore[union-attr]
    assert sent == finished > 100


def test_demo_on_the_embedded_broker_for_5_seconds(tmp_path: Path) -> None:
    result = run_demo("--duration", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("evkafka demo: embedded Kafka-protocol broker (Tansu, in memory)")
    assert "service: examples.quickstart consuming 'orders'" in out
    assert "stopping after 5s" in out
    check_output(out, "orders")
    assert "Traceback" not in result.stderr


async def test_demo_against_a_cluster_uses_fresh_topics_and_deletes_them(
    bootstrap: str, tmp_path: Path
) -> None:
    result = run_demo(
        "--bootstrap-servers", bootstrap, "--duration", "2", "--rate", "80", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    topic = re.search(r"consuming '(evkafka-demo-orders-[0-9a-f]{8})'", result.stdout)
    assert topic is not None, result.stdout
    check_output(result.stdout, topic.group(1))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        left = {t for t in await consumer.topics() if t.startswith(topic.group(1))}
    finally:
        await consumer.stop()
    assert left == set()
