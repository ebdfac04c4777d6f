"""Log output of `evkafka run`: readable text, or one JSON object per line for log shippers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

#: Record coordinates a log call may pass in `extra={...}`; the JSON format keeps them as fields.
COORDINATES = (
    "consumer",
    "group_id",
    "topic",
    "partition",
    "offset",
    "event_type",
    "endpoint",
    "attempt",
    "worker",
)

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, coordinates, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        fields = record.__dict__
        for name in COORDINATES:
            value = fields.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_handler(fmt: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `fmt`."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Set up the root logger for a process that evkafka owns (a no-op if it already has handlers)."""
    logging.basicConfig(level=level, handlers=[log_handler(fmt)])
