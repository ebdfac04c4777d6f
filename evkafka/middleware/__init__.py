"""Middleware declaration and the built-in layers."""

from __future__ import annotations

from typing import Any

from evkafka.middleware.commit import CommitMiddleware
from evkafka.middleware.compat import JsonTypedDecoderMiddleware
from evkafka.middleware.decoding import DecoderMiddleware
from evkafka.middleware.errors import ErrorPolicy, ErrorPolicyMiddleware
from evkafka.middleware.event_type import (
    BodyFieldEventTypeMiddleware,
    CloudEventsBinaryMiddleware,
    CloudEventsStructuredMiddleware,
    EventTypeMiddleware,
)


class Middleware:
    """A layer declaration: built as `cls(next_app, *args, **kwargs)` once per consumer."""

    __slots__ = ("args", "cls", "kwargs")

    def __init__(self, cls: type[Any], *args: Any, **kwargs: Any) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self) -> Any:
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        options = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Middleware({', '.join([self.cls.__name__, *options])})"


__all__ = [
    "BodyFieldEventTypeMiddleware",
    "CloudEventsBinaryMiddleware",
    "CloudEventsStructuredMiddleware",
    "CommitMiddleware",
    "DecoderMiddleware",
    "ErrorPolicy",
    "ErrorPolicyMiddleware",
    "EventTypeMiddleware",
    "JsonTypedDecoderMiddleware",
    "Middleware",
]
