"""The application: consumers, producers, lifespan, and running them together."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evkafka.config import ConsumerConfig, consumer_settings
from evkafka.consumer import Consumer
from evkafka.errors import ConfigError
from evkafka.handler import Handler
from evkafka.lifespan import LifespanRunner
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorPolicy
from evkafka.stack import build_chain
from evkafka.types import Committer, Lifespan, MessageApp

logger = logging.getLogger("evkafka.app")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ConsumerSpec:
    """A registered consumer, before it is started."""

    name: str
    config: ConsumerConfig
    settings: dict[str, Any]
    handler: Handler
    middleware: Sequence[Middleware] | None
    error_policy: ErrorPolicy | None
    extra: dict[str, Any] = field(default_factory=dict)

    def chain(self, committer: Committer) -> MessageApp:
        return build_chain(
            self.handler,
            self.middleware,
            committer,
            self.settings["auto_commit_mode"],
            self.error_policy,
        )


class EVKafkaApp:
    """Runs consumers and producers with a shared lifespan until a signal stops it."""

    def __init__(
        self,
        config: ConsumerConfig | None = None,
        name: str | None = "default",
        lifespan: Lifespan | None = None,
        middleware: Sequence[Middleware] | None = None,
        error_policy: ErrorPolicy | None = None,
        expose_asyncapi: bool = False,
        title: str = "EVKafka",
        version: str = "0.1.0",
        description: str | None = None,
        asyncapi_host: str = "0.0.0.0",
        asyncapi_port: int = 8080,
        graceful_timeout_ms: int = 30_000,
    ) -> None:
        self.lifespan = lifespan
        self.middleware = middleware
        self.error_policy = error_policy
        self.expose_asyncapi = expose_asyncapi
        self.title = title
        self.version = version
        self.description = description
        self.asyncapi_host = asyncapi_host
        self.asyncapi_port = asyncapi_port
        self.graceful_timeout_ms = graceful_timeout_ms
        self.consumers: dict[str, ConsumerSpec] = {}
        self._default_config = config
        self._default_name = name or "default"
        self._default_handler: Handler | None = None
        self._running: list[Consumer] = []
        self._lifespan = LifespanRunner(lifespan, self)
        self.state: dict[str, Any] = self._lifespan.state

    # -- registration ----------------------------------------------------

    def event(
        self,
        event_type: str,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> Callable[[F], F]:
        """Register an endpoint on the default consumer (the app's `config`)."""
        if self._default_config is None:
            raise ConfigError(
                "app.event needs a default consumer: pass config={...} to EVKafkaApp() "
                "or register endpoints on a Handler and call app.add_consumer"
            )
        if self._default_handler is None:
            self._default_handler = Handler()
            self.add_consumer(self._default_config, self._default_handler, self._default_name)
        return self._default_handler.event(event_type, summary, description, tags)

    def add_consumer(
        self,
        config: ConsumerConfig,
        handler: Handler,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
        error_policy: ErrorPolicy | None = None,
    ) -> None:
        """Consume `config['topics']` into `handler`; config errors are raised here."""
        settings = consumer_settings(config)
        name = name or f"consumer-{len(self.consumers) + 1}"
        if name in self.consumers:
            raise ConfigError(f"a consumer named {name!r} is already registered")
        self.consumers[name] = ConsumerSpec(
            name=name,
            config=config,
            settings=settings,
            handler=handler,
            middleware=middleware if middleware is not None else self.middleware,
            error_policy=error_policy or self.error_policy,
        )

    # -- running ---------------------------------------------------------

    def run(self) -> None:
        """Block until SIGINT/SIGTERM (exit 0) or a failure (exit non-zero)."""
        code = asyncio.run(self.serve())
        if code:
            sys.exit(code)

    async def serve(self) -> int:
        """Run until a signal or a failure; returns the process exit code."""
        stop = asyncio.Event()
        self._install_signals(stop)
        try:
            await self.start()
        except Exception as exc:
            logger.error("evkafka app failed to start: %s", exc)
            await self._stop_quietly(exc)
            return 1
        waiters = [asyncio.create_task(stop.wait())] + [
            asyncio.create_task(c.wait()) for c in self._running
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        failed = [c for c in self._running if c.error is not None]
        try:
            await self.stop()
        except Exception as exc:
            logger.error("evkafka app failed to stop cleanly: %s", exc)
            return 1
        if failed:
            logger.error(
                "evkafka app exited because consumer %r failed: %s",
                failed[0].name,
                failed[0].error,
            )
            return 1
        return 0

    async def start(self) -> None:
        """Lifespan startup, then every consumer (connecting with retries)."""
        await self._lifespan.start()
        for spec in self.consumers.values():
            consumer = Consumer(spec.name, spec.settings, spec.chain, self.state)
            self._running.append(consumer)
            await consumer.start()

    async def stop(self) -> None:
        """Consumers finish in-flight work and commit; then the lifespan ends."""
        running, self._running = self._running, []
        await asyncio.gather(*(c.stop() for c in running))
        await self._lifespan.stop()

    async def _stop_quietly(self, exc: BaseException) -> None:
        try:
            running, self._running = self._running, []
            await asyncio.gather(*(c.stop() for c in running), return_exceptions=True)
            await self._lifespan.stop(exc)
        except Exception:
            logger.exception("error while stopping after a failed start")

    def _install_signals(self, stop: asyncio.Event) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                logger.warning("second %s: exiting now", sig.name)
                sys.stderr.flush()
                os._exit(130)
            logger.info("%s received: shutting down gracefully", sig.name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
