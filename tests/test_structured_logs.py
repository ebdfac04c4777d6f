"""Logs: one `evkafka.*` hierarchy, coordinates on per-message lines, quiet at INFO."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

import evkafka
from evkafka import ErrorPolicy, EVKafkaApp, Handler, TestClient
from evkafka.logs import JsonFormatter

CONFIG = {"topics": ["orders"], "bootstrap_servers": "localhost:9092", "group_id": "grp"}
COORDINATES = ("consumer", "group_id", "topic", "partition", "offset", "event_type", "attempt")


def test_every_logger_is_under_the_evkafka_hierarchy() -> None:
    package = Path(evkafka.__file__).parent
    names = [
        (path.name, name)
        for path in package.rglob("*.py")
        for name in re.findall(r"getLogger\(([^)]*)\)", path.read_text())
    ]
    assert names
    for file, name in names:
        assert name == "__name__" or re.fullmatch(r'"evkafka(\.[a-z_.]+)?"', name) or name in (
            "name",  # demo.py quiets loggers it is given by name
        ), f"{file}: logger {name} is outside the evkafka.* hierarchy"


async def run_scripted(caplog: pytest.LogCaptureFixture, level: int) -> None:
    handler = Handler()

    @handler.event("Good")
    async def good(payload: dict) -> None:
        pass

    @handler.event("Bad")
    async def bad(payload: dict) -> None:
        raise RuntimeError("boom")

    app = EVKafkaApp(error_policy=ErrorPolicy(retries=1, backoff_ms=0, on_failure="skip"))
    app.add_consumer(CONFIG, handler, name="c")  # type: ignore[arg-type]
    caplog.set_level(level, logger="evkafka")
    async with TestClient(app) as client:
        for i in range(20):
            await client.send_event("orders", {"i": i}, "Good")
        await client.send_event("orders", {}, "Nobody", partition=1)
        await client.send_event("orders", {}, "Bad", partition=2)


async def test_nothing_per_message_at_info_only_the_failure_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_scripted(caplog, logging.INFO)
    records = [r for r in caplog.records if r.name.startswith("evkafka")]
    assert [(r.name, r.levelno) for r in records] == [
        ("evkafka.errors", logging.WARNING),  # retrying
        ("evkafka.errors", logging.WARNING),  # skipped after 2 attempts
    ]


async def test_per_message_lines_carry_the_record_coordinates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_scripted(caplog, logging.DEBUG)
    per_message = [r for r in caplog.records if r.name in ("evkafka.handler", "evkafka.errors")]
    skipped = [r for r in per_message if r.name == "evkafka.handler"]
    assert len(skipped) == 1
    assert (skipped[0].topic, skipped[0].partition, skipped[0].event_type) == (  # type: ignore[attr-defined]
        "orders",
        1,
        "Nobody",
    )
    for record in per_message:
        fields = {name: getattr(record, name, "missing") for name in COORDINATES}
        assert "missing" not in fields.values(), (record.getMessage(), fields)
        assert fields["consumer"] == "c" and fields["group_id"] == "grp"
    retry, skip = [r for r in per_message if r.name == "evkafka.errors"]
    assert (retry.partition, retry.offset, retry.attempt) == (2, 0, 1)  # type: ignore[attr-defined]
    assert retry.endpoint.endswith(".bad")  # type: ignore[attr-defined]
    assert skip.attempt == 2  # type: ignore[attr-defined]


async def test_json_log_lines_hold_the_coordinates_as_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_scripted(caplog, logging.INFO)
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["logger"] == "evkafka.errors"
    assert {k: line[k] for k in ("consumer", "topic", "partition", "offset", "event_type")} == {
        "consumer": "c",
        "topic": "orders",
        "partition": 2,
        "offset": 0,
        "event_type": "Bad",
    }
    assert line["attempt"] == 2
    assert line["endpoint"].endswith("bad")
