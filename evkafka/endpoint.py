"""An inbound endpoint: its signature read once, then decode-and-call per message."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from evkafka.codec import JSON, Codec, Decoder, is_supported_payload_type
from evkafka.errors import PayloadDecodeError, RegistrationError, TombstoneError
from evkafka.message import Message
from evkafka.request import Request

if TYPE_CHECKING:
    from evkafka.middleware.errors import ErrorPolicy

_NONE = type(None)
_UNSET = object()


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """(inner type, nullable) for `Optional[T]` / `T | None`."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if _NONE in args:
            rest = tuple(a for a in args if a is not _NONE)
            inner = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007
            return inner, True
    return tp, tp is Any


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


class Endpoint:
    """Knows how to turn a Message into the arguments of one user function."""

    def __init__(
        self,
        event_type: str,
        func: Callable[..., Any],
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        error_policy: ErrorPolicy | None = None,
    ) -> None:
        self.event_type = event_type
        self.func = func
        #: Overrides the consumer's error policy for messages routed here.
        self.error_policy = error_policy
        self.name = getattr(func, "__qualname__", None) or type(func).__name__
        self.summary = summary
        self.description = description if description is not None else inspect.getdoc(func)
        self.tags = list(tags or ())
        self.is_async = _is_async(func)
        self.payload_type: Any = None
        self.nullable = False
        self.has_payload = False
        self.request_first = False
        self.takes_request = False
        self._inspect()
        self._payload_only = self.is_async and self.has_payload and not self.takes_request
        #: The codec `_decoder` was built for; `_UNSET` never matches a message's codec.
        self._codec: Codec | object = _UNSET
        self._decoder: Decoder | None = None

    def _inspect(self) -> None:
        target = self.func
        if not inspect.isfunction(target) and not inspect.ismethod(target):
            target = getattr(target, "__call__", target)  # noqa: B004
        try:
            hints = typing.get_type_hints(target)
        except NameError as exc:
            raise RegistrationError(
                f"endpoint {self.name!r} for event {self.event_type!r}: cannot resolve an "
                f"annotation ({exc}); define the type at module level"
            ) from exc
        params = [
            p
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        payload: list[tuple[str, Any]] = []
        for position, p in enumerate(params):
            if p.name not in hints:
                raise RegistrationError(
                    f"endpoint {self.name!r} for event {self.event_type!r}: parameter "
                    f"{p.name!r} has no type annotation; annotate it with the payload type "
                    f"(dict, str, bytes, a model, ...) or Request"
                )
            tp = hints[p.name]
            if tp is Request:
                self.takes_request = True
                self.request_first = position == 0
                continue
            payload.append((p.name, tp))
        if len(payload) > 1:
            names = ", ".join(n for n, _ in payload)
            raise RegistrationError(
                f"endpoint {self.name!r} for event {self.event_type!r} has more than one "
                f"payload parameter ({names}); an endpoint takes one payload and an optional "
                f"Request"
            )
        if payload:
            name, tp = payload[0]
            inner, self.nullable = _split_optional(tp)
            if not is_supported_payload_type(inner):
                raise RegistrationError(
                    f"endpoint {self.name!r} for event {self.event_type!r}: parameter "
                    f"{name!r} has unsupported payload type {tp!r}"
                )
            self.has_payload = True
            self.payload_type = inner

    def decode(self, message: Message) -> Any:
        """The payload for this message, decoded in one pass from bytes."""
        value = message.value
        if value is None:
            if self.nullable:
                return None
            raise TombstoneError(
                "tombstone (null value) for a payload type that is not Optional",
                message,
                self.name,
            )
        codec = message.codec or JSON
        if codec is not self._codec:
            self._decoder = codec.decoder(self.payload_type)
            self._codec = codec
        try:
            return self._decoder(value)  # type: ignore[misc]
        except Exception as exc:
            raise self._decode_error(message, exc) from exc

    def _decode_error(self, message: Message, exc: Exception) -> PayloadDecodeError:
        return PayloadDecodeError(
            f"cannot decode value as {getattr(self.payload_type, '__name__', self.payload_type)}: "
            f"{type(exc).__name__}: {exc}",
            message,
            self.name,
        )

    def _arguments(self, message: Message) -> tuple[Any, ...]:
        if not self.has_payload:
            return (Request(message),) if self.takes_request else ()
        payload = self.decode(message)
        if not self.takes_request:
            return (payload,)
        if self.request_first:
            return (Request(message), payload)
        return (payload, Request(message))

    def __call__(self, message: Message) -> Awaitable[None]:
        if self._payload_only:
            # The common shape, `async def f(payload: T)`: decode, hand back its coroutine
            # (decode errors raise here, inside the caller's `await`). Once the codec is
            # known, decoding is inlined: one call less per message than `decode()`.
            value = message.value
            if value is not None and message.codec is self._codec:
                try:
                    payload = self._decoder(value)  # type: ignore[misc]
                except Exception as exc:
                    raise self._decode_error(message, exc) from exc
                return self.func(payload)  # type: ignore[no-any-return]
            return self.func(self.decode(message))  # type: ignore[no-any-return]
        return self._call(message)

    async def _call(self, message: Message) -> None:
        args = self._arguments(message)
        if self.is_async:
            await self.func(*args)
        else:
            # Copy the context so a plain def sees what middleware set (e.g. the trace span).
            run = contextvars.copy_context().run
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, functools.partial(run, self.func, *args))

    def __repr__(self) -> str:
        return f"<Endpoint {self.event_type!r} -> {self.name}>"
