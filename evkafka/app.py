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
from typing import TYPE_CHECKING, Any, TypeVar

from evkafka.config import ConsumerConfig, ProducerConfig, consumer_settings
from evkafka.consumer import Consumer
from evkafka.conventions import EventTypeConvention, HeaderConvention
from evkafka.errors import ConfigError, EVKafkaError
from evkafka.handler import Handler
from evkafka.lifespan import LifespanRunner
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorPolicy
from evkafka.producer import EVKafkaProducer
from evkafka.sender import Sender
from evkafka.stack import build_chain, find_convention, processing_stack
from evkafka.types import Committer, Lifespan, MessageApp

if TYPE_CHECKING:
    from evkafka.server import AppServer, RouteInstaller

logger = logging.getLogger("evkafka.app")

#: `serve()` result when a consumer died or starting or stopping failed.
EXIT_FAILURE = 1
#: Exit code of a process whose graceful shutdown a second SIGINT/SIGTERM cut short.
EXIT_FORCED = 130
#: A repeat signal this soon after the first is the same request (systemd, `timeout` and
#: supervisors may signal both a process and its group), not a demand to force the exit.
REPEAT_SIGNAL_WINDOW_S = 0.5

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
    """Runs consumers and producers with a shared lifespan until a signal stops it.

    `run()` owns the process; `await serve()` runs inside another asyncio program; and
    `await start()` / `await stop()` embed it in a web app's lifespan (no signal handlers).
    """

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
        expose_health: bool = False,
        http_host: str | None = None,
        http_port: int | None = None,
    ) -> None:
        if (
            not isinstance(graceful_timeout_ms, int)
            or isinstance(graceful_timeout_ms, bool)
            or graceful_timeout_ms <= 0
        ):
            raise ConfigError(
                f"graceful_timeout_ms must be a positive integer, not {graceful_timeout_ms!r}"
            )
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
        self.expose_health = expose_health
        #: Where the HTTP server (health, API docs, metrics) listens; default the asyncapi ones.
        self.http_host = asyncapi_host if http_host is None else http_host
        self.http_port = asyncapi_port if http_port is None else http_port
        #: The running HTTP server (its `port` is the bound one), if any.
        self.http_server: AppServer | None = None
        self._http_installers: list[RouteInstaller] = []
        self._stop_requested: asyncio.Event | None = None
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

    def add_http_routes(self, installer: RouteInstaller) -> None:
        """Have the HTTP server call `installer(web_app)` at startup (e.g. for `/metrics`).

        Installing routes turns the server on, as `expose_health` and `expose_asyncapi` do.
        """
        if not callable(installer):
            raise ConfigError(f"add_http_routes needs a callable, not {installer!r}")
        self._http_installers.append(installer)

    @property
    def serves_http(self) -> bool:
        """Whether `start()` runs the HTTP server (health probes, API docs, installed routes)."""
        return self.expose_health or self.expose_asyncapi or bool(self._http_installers)

    # -- running ---------------------------------------------------------

    def run(self) -> None:
        """Block until SIGINT/SIGTERM (exit 0) or a failure (exit non-zero)."""
        code = asyncio.run(self.serve())
        if code:
            sys.exit(code)

    async def serve(self, install_signal_handlers: bool = True) -> int:
        """Run until a signal, `request_stop()` or a failure; returns the process exit code.

        Signal handlers go in only from the main thread, and come out again on return.
        """
        stop = self._stop_requested = asyncio.Event()
        restore = self._install_signals(stop) if install_signal_handlers else None
        try:
            return await self._serve(stop)
        finally:
            self._stop_requested = None
            if restore is not None:
                restore()

    def request_stop(self) -> None:
        """Ask a running `serve()` to shut down gracefully, as the first SIGTERM does."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _serve(self, stop: asyncio.Event) -> int:
        try:
            await self.start()
        except Exception as exc:
            return _exit(EXIT_FAILURE, f"could not start: {_describe(exc)}")
        waiters = [asyncio.create_task(stop.wait())] + [
            asyncio.create_task(c.wait()) for c in self._running
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            logger.info("serve() cancelled: shutting down")
            await self._stop_quietly(None)
            raise
        finally:
            for w in waiters:
                w.cancel()
        reasons = [
            f"consumer {c.name!r} failed: {_describe(c.error)}"
            for c in self._running
            if c.error is not None
        ]
        try:
            await self.stop()
        except Exception as exc:
            logger.exception("evkafka app failed to stop cleanly")
            reasons.append(f"shutdown failed: {_describe(exc)}")
        if reasons:
            return _exit(EXIT_FAILURE, "; ".join(reasons))
        return _exit(0, "stopped gracefully")

    async def start(self) -> None:
        """Lifespan startup, then producers, then consumers, then the HTTP server (if any).

        Installs no signal handlers and needs no main thread, so a web app's lifespan
        can call it next to its own server; pair it with `stop()`. On failure, whatever
        started is stopped again before the error is raised.
        """
        try:
            await self._lifespan.start()
            for producer_spec in self.producers.values():
                producer_spec.sender.bind(producer_spec.producer)
                self._running_producers.append(producer_spec)
                await producer_spec.producer.start()
            for spec in self.consumers.values():
                consumer = Consumer(spec.name, spec.settings, spec.chain, self.state)
                self._running.append(consumer)
                await consumer.start()
            if self.serves_http:
                await self._start_http()
        except Exception as exc:
            logger.error("evkafka app failed to start: %s", _describe(exc), exc_info=exc)
            await self._stop_quietly(exc)
            raise
        except asyncio.CancelledError:
            await self._stop_quietly(None)
            raise

    async def stop(self) -> None:
        """HTTP server first; consumers finish in-flight work (up to `graceful_timeout_ms`) and
        commit; producers deliver; then the lifespan ends. The first failure is raised at the end.
        """
        try:
            await self._stop_http()
        finally:
            running, self._running = self._running, []
            grace_s = self.graceful_timeout_ms / 1000
            results = await asyncio.gather(
                *(c.stop(grace_s) for c in running), return_exceptions=True
            )
            try:
                await self._stop_producers()
            finally:
                await self._lifespan.stop()
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _start_http(self) -> None:
        from evkafka.server import AppServer

        installers = list(self._http_installers)
        if self.expose_asyncapi:
            from evkafka.asyncapi.routes import add_routes

            installers.insert(0, lambda web_app: add_routes(web_app, self))
        server = AppServer(self.http_host, self.http_port, lambda: self._running, installers)
        await server.start()
        self.http_server = server

    async def _stop_http(self) -> None:
        server, self.http_server = self.http_server, None
        if server is not None:
            await server.stop()

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

    async def _stop_quietly(self, exc: BaseException | None) -> None:
        """Stop whatever started after a failed start or a cancellation; errors are only logged."""
        try:
            await self._stop_http()
        except Exception:
            logger.exception("error while stopping the HTTP server")
        running, self._running = self._running, []
        results = await asyncio.gather(
            *(c.stop(self.graceful_timeout_ms / 1000) for c in running), return_exceptions=True
        )
        for consumer, result in zip(running, results, strict=True):
            if isinstance(result, Exception):
                logger.error("error while stopping consumer %r: %s", consumer.name, result)
        try:
            await self._stop_producers()
        except Exception:
            logger.exception("error while stopping producers")
        try:
            await self._lifespan.stop(exc)
        except Exception as err:
            logger.error("%s", _describe(err), exc_info=err)

    def _install_signals(self, stop: asyncio.Event) -> Callable[[], None] | None:
        """First SIGINT/SIGTERM: graceful stop; second: exit at once. Returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return None
        loop = asyncio.get_running_loop()
        first_at: float | None = None

        def on_signal(sig: signal.Signals) -> None:
            nonlocal first_at
            now = loop.time()
            if first_at is None:
                first_at = now
                logger.info("%s received: shutting down gracefully", sig.name)
                stop.set()
            elif now - first_at < REPEAT_SIGNAL_WINDOW_S:
                logger.info("%s again at once: the same stop request, still graceful", sig.name)
            else:
                logger.warning(
                    "second %s: exiting now with code %d, in-flight work is abandoned",
                    sig.name,
                    EXIT_FORCED,
                )
                sys.stderr.flush()
                os._exit(EXIT_FORCED)

        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in sigs}
        for sig in sigs:
            loop.add_signal_handler(sig, on_signal, sig)

        def restore() -> None:
            for sig in sigs:
                loop.remove_signal_handler(sig)
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])

        return restore


def _describe(exc: BaseException | None) -> str:
    """An error for a log line: evkafka's own messages say enough, others get their type."""
    if isinstance(exc, EVKafkaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _exit(code: int, reason: str) -> int:
    """Log the app's last line, saying why it ends, and return `code`."""
    if code:
        logger.error("evkafka app exiting with code %d: %s", code, reason)
    else:
        logger.info("evkafka app exiting with code 0: %s", reason)
    return code
