"""Log formats of `evkafka run`: text, and JSON lines with record coordinates."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from evkafka.logs import JsonFormatter, log_handler


def emit(handler: logging.Handler, message: str, *args: object, **kwargs: object) -> None:
    logger = logging.getLogger("evkafka.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, *args, **kwargs)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_json_lines_carry_level_logger_message_and_record_coordinates() -> None:
    out = io.StringIO()
    emit(
        log_handler("json", out),
        "retrying %s",
        "OrderCreated",
        extra={"topic": "orders", "partition": 3, "offset": 42, "event_type": "OrderCreated"},
    )
    entry = json.loads(out.getvalue())
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "evkafka.test-logs"
    assert entry["message"] == "retrying OrderCreated"
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("orders", 3, 42)
    assert entry["event_type"] == "OrderCreated"
    assert entry["time"].endswith("+00:00") and isinstance(entry["pid"], int)
    assert "consumer" not in entry  # absent coordinates are left out, not null


def test_json_keeps_the_traceback_and_survives_odd_values() -> None:
    out = io.StringIO()
    try:
        raise ValueError("bad payload")
    except ValueError:
        emit(log_handler("json", out), "failed", exc_info=True, extra={"offset": b"\x00"})
    entry = json.loads(out.getvalue())
    assert "ValueError: bad payload" in entry["exception"]
    assert entry["offset"] == "b'\\x00'"


def test_text_lines_name_the_process() -> None:
    out = io.StringIO()
    emit(log_handler("text", out), "hello")
    line = out.getvalue().strip()
    assert line.endswith(f" WARNING [{os.getpid()}] evkafka.test-logs: hello")


def test_an_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="'text' or 'json', not 'xml'"):
        log_handler("xml")  # type: ignore[arg-type]


def test_formatter_is_usable_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None)
    assert json.loads(JsonFormatter().format(record))["message"] == "plain"
