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

from evkafka.config import ConsumerConfig, ProducerConfig, consumer_settings
from evkafka.consumer import Consumer
from evkafka.conventions import EventTypeConvention, HeaderConvention
from evkafka.errors import ConfigError
from evkafka.handler import Handler
from evkafka.lifespan import LifespanRunner
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorPolicy
from evkafka.producer import EVKafkaProducer
from evkafka.sender import Sender
from evkafka.stack import build_chain, find_convention, processing_stack
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
        """The consumer's chain; a committer with `dead_letters` (the consumer) lends them."""
        return build_chain(
            self.handler,
            self.middleware,
            committer,
            self.settings["auto_commit_mode"],
            self.error_policy,
            dead_letters=getattr(committer, "dead_letters", None),
            time_budget_ms=self.settings["max_endpoint_exec_time_ms"],
        )


@dataclass
class ProducerSpec:
    """A registered producer and the sender whose endpoints it serves."""

    name: str
    config: ProducerConfig
    sender: Sender
    producer: EVKafkaProducer
    middleware: Sequence[Middleware] | None
    convention: EventTypeConvention


async def _no_op(message: Message) -> None:
    return None


def inbound_convention(middleware: Sequence[Middleware] | None) -> EventTypeConvention:
    """The event-type convention the app-level inbound stack reads, so producers write it."""
    layer: MessageApp = _no_op
    for m in reversed(processing_stack(middleware)):
        layer = m.cls(layer, *m.args, **m.kwargs)
    return find_convention(layer) or HeaderConvention()


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
        contact: dict[str, str] | None = None,
        license: str | dict[str, str] | None = None,
    ) -> None:
        self.lifespan = lifespan
        self.middleware = middleware
        self.error_policy = error_policy
        self.expose_asyncapi = expose_asyncapi
        self.title = title
        self.version = version
        self.description = description
        self.contact = contact
        self.license = license
        self.asyncapi_host = asyncapi_host
        self.asyncapi_port = asyncapi_port
        self.graceful_timeout_ms = graceful_timeout_ms
        self.consumers: dict[str, ConsumerSpec] = {}
        self.producers: dict[str, ProducerSpec] = {}
        self._running_producers: list[ProducerSpec] = []
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
        error_policy: ErrorPolicy | None = None,
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
        return self._default_handler.event(event_type, summary, description, tags, error_policy)

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

    def add_producer(
        self,
        config: ProducerConfig,
        sender: Sender,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
        convention: EventTypeConvention | None = None,
    ) -> None:
        """Serve `sender`'s endpoints with a producer; config and topic errors are raised here.

        The event-type convention defaults to the one the app's inbound stack reads.
        """
        name = name or f"producer-{len(self.producers) + 1}"
        if name in self.producers:
            raise ConfigError(f"a producer named {name!r} is already registered")
        if not isinstance(sender, Sender):
            raise ConfigError(f"add_producer needs a Sender, not {type(sender).__name__}")
        convention = convention or inbound_convention(self.middleware)
        producer = EVKafkaProducer(config, convention=convention, middleware=middleware, name=name)
        sender.check_topics(producer.topic, name)
        self.producers[name] = ProducerSpec(name, config, sender, producer, middleware, convention)

    def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of the consumed and produced events, as a dict."""
        from evkafka.asyncapi.spec import build_spec

        return build_spec(self)

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
        """Lifespan startup, then producers, then every consumer (connecting with retries)."""
        await self._lifespan.start()
        for producer_spec in self.producers.values():
            producer_spec.sender.bind(producer_spec.producer)
            self._running_producers.append(producer_spec)
            await producer_spec.producer.start()
        for spec in self.consumers.values():
            consumer = Consumer(spec.name, spec.settings, spec.chain, self.state)
            self._running.append(consumer)
            await consumer.start()

    async def stop(self) -> None:
        """Consumers finish in-flight work and commit; producers deliver; then the lifespan ends."""
        running, self._running = self._running, []
        try:
            await asyncio.gather(*(c.stop() for c in running))
        finally:
            try:
                await self._stop_producers()
            finally:
                await self._lifespan.stop()

    async def _stop_producers(self) -> None:
        """Flush and stop every started producer; the first delivery failure is raised after all stopped."""
        running, self._running_producers = self._running_producers, []
        results = await asyncio.gather(
            *(spec.producer.stop() for spec in running), return_exceptions=True
        )
        for spec in running:
            spec.sender.unbind(spec.producer)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _stop_quietly(self, exc: BaseException) -> None:
        try:
            running, self._running = self._running, []
            await asyncio.gather(*(c.stop() for c in running), return_exceptions=True)
            try:
                await self._stop_producers()
            except Exception:
                logger.exception("error while stopping producers after a failed start")
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
