"""Runs the user's lifespan: startup before consuming, teardown after."""

from __future__ import annotations

import inspect
from contextlib import AbstractAsyncContextManager
from typing import Any

from evkafka.errors import EVKafkaError
from evkafka.types import Lifespan


class LifespanError(EVKafkaError):
    """The lifespan's startup or teardown raised."""


class LifespanRunner:
    """Enters the lifespan context once and keeps the state it yields."""

    def __init__(self, lifespan: Lifespan | None, app: Any) -> None:
        self.lifespan = lifespan
        self.app = app
        self.state: dict[str, Any] = {}
        self._cm: AbstractAsyncContextManager[Any] | None = None

    def _open(self) -> AbstractAsyncContextManager[Any]:
        assert self.lifespan is not None
        try:
            takes_app = len(inspect.signature(self.lifespan).parameters) >= 1
        except (TypeError, ValueError):
            takes_app = False
        return self.lifespan(self.app) if takes_app else self.lifespan()

    async def start(self) -> dict[str, Any]:
        if self.lifespan is None:
            return self.state
        try:
            self._cm = self._open()
            yielded = await self._cm.__aenter__()
        except Exception as exc:
            self._cm = None
            raise LifespanError(f"lifespan startup failed: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled mid-startup: there is nothing to tear down
            self._cm = None
            raise
        if yielded is not None:
            if not isinstance(yielded, dict):
                raise LifespanError(
                    f"lifespan must yield a dict of state or nothing, not {type(yielded).__name__}"
                )
            self.state.update(yielded)
        return self.state

    async def stop(self, exc: BaseException | None = None) -> None:
        cm, self._cm = self._cm, None
        if cm is None:
            return
        try:
            await cm.__aexit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        except Exception as err:
            raise LifespanError(f"lifespan teardown failed: {type(err).__name__}: {err}") from err
