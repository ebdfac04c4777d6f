"""Keeps N worker processes running (`evkafka run --workers N`), restarting crashed ones with backoff."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from evkafka.app import EXIT_FORCED, REPEAT_SIGNAL_WINDOW_S
from evkafka.errors import ConfigError

logger = logging.getLogger("evkafka.supervisor")


@dataclass
class Backoff:
    """Delay before restarting a crashed worker: doubles per crash, capped, reset after a stable run."""

    initial_s: float = 0.5
    max_s: float = 30.0
    stable_after_s: float = 60.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ConfigError(
                f"backoff needs 0 < initial_s <= max_s, not {self.initial_s!r} and {self.max_s!r}"
            )
        if self.stable_after_s <= 0:
            raise ConfigError(f"stable_after_s must be positive, not {self.stable_after_s!r}")
        self._next = self.initial_s

    def after_crash(self, uptime_s: float) -> float:
        """The delay before the next start of a worker that crashed after `uptime_s`."""
        if uptime_s >= self.stable_after_s:
            self._next = self.initial_s
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay


def describe_exit(code: int | None) -> str:
    """'exited with code 1' or 'was killed by SIGKILL', for log lines."""
    if code is None:
        return "could not be started"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def exit_with_parent(parent_pid: int) -> None:
    """In a worker: have Linux send SIGTERM when the supervisor dies, so no worker outlives it."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the supervisor died before the request above
        raise SystemExit(f"evkafka worker: supervisor {parent_pid} is gone; exiting")


class Supervisor:
    """Runs `workers` copies of `worker_command(index)`; SIGINT/SIGTERM stops them gracefully.

    Each worker gets its own process group, so a terminal's Ctrl-C reaches only the
    supervisor, which forwards one SIGTERM to each worker. A second signal kills them.
    """

    def __init__(
        self,
        worker_command: Callable[[int], Sequence[str]],
        workers: int,
        *,
        backoff: Callable[[], Backoff] = Backoff,
        stop_timeout_s: float = 60.0,
    ) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, not {workers!r}")
        if stop_timeout_s <= 0:
            raise ConfigError(f"stop_timeout_s must be positive, not {stop_timeout_s!r}")
        self.worker_command = worker_command
        self.workers = workers
        self.backoff = backoff
        self.stop_timeout_s = stop_timeout_s
        #: index -> the running process of that worker slot.
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        #: index -> how the slot's last process ended.
        self.exit_codes: dict[int, int | None] = {}
        self.restarts = 0
        self._stopping: asyncio.Event | None = None
        self._forced = False
        self._stop_requested_at = 0.0

    def run(self) -> int:
        """Block until stopped by a signal; returns the exit code for the supervisor process."""
        return asyncio.run(self.serve())

    async def serve(self, install_signal_handlers: bool = True) -> int:
        """Start the workers and keep them running until `request_stop()` or a signal."""
        stopping = self._stopping = asyncio.Event()
        self._forced = False
        restore = self._install_signals() if install_signal_handlers else None
        slots = [
            asyncio.create_task(self._keep(i, stopping), name=f"evkafka-worker-{i}")
            for i in range(self.workers)
        ]
        try:
            await stopping.wait()
            _, late = await asyncio.wait(slots, timeout=self.stop_timeout_s)
            if late:
                self._signal_all(signal.SIGKILL)
                await asyncio.wait(late)
                logger.error(
                    "evkafka supervisor exiting with code 1: workers did not stop within %gs "
                    "and were killed",
                    self.stop_timeout_s,
                )
                return 1
        finally:
            for slot in slots:
                slot.cancel()
            self._signal_all(signal.SIGKILL)  # only if serve() itself was cancelled
            await asyncio.gather(*slots, return_exceptions=True)
            if restore is not None:
                restore()
            self._stopping = None
        if self._forced:
            logger.warning("evkafka supervisor exiting with code %d: forced stop", EXIT_FORCED)
            return EXIT_FORCED
        # Killed by our SIGTERM means it was still starting up: nothing was in flight.
        failed = {i: c for i, c in self.exit_codes.items() if c not in (0, -signal.SIGTERM)}
        if failed:
            logger.error(
                "evkafka supervisor exiting with code 1: on stop, %s",
                "; ".join(f"worker {i} {describe_exit(c)}" for i, c in sorted(failed.items())),
            )
            return 1
        logger.info("evkafka supervisor: all %d workers stopped gracefully", self.workers)
        return 0

    def request_stop(self) -> None:
        """Stop gracefully (SIGTERM to every worker); called again, kill them.

        A repeat within `REPEAT_SIGNAL_WINDOW_S` counts as the same request.
        """
        stopping = self._stopping
        if stopping is None:
            return
        now = asyncio.get_running_loop().time()
        if not stopping.is_set():
            logger.info("stopping %d workers gracefully", len(self.processes))
            self._stop_requested_at = now
            stopping.set()
            self._signal_all(signal.SIGTERM)
        elif now - self._stop_requested_at < REPEAT_SIGNAL_WINDOW_S:
            logger.info("stop requested again at once: the same request, still graceful")
        else:
            logger.warning("second stop request: killing the workers")
            self._forced = True
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: signal.Signals) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.send_signal(sig)

    async def _keep(self, index: int, stopping: asyncio.Event) -> None:
        """One worker slot: start the worker, and restart it after a crash until stopping."""
        loop = asyncio.get_running_loop()
        backoff = self.backoff()
        while not stopping.is_set():
            started = loop.time()
            pid: int | None = None
            code: int | None = None
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.worker_command(index), process_group=0
                )
            except OSError as exc:
                logger.error("worker %d could not be started: %s", index, exc)
            else:
                pid = process.pid
                self.processes[index] = process
                logger.info("worker %d started (pid %d)", index, pid)
                if stopping.is_set():  # the stop raced with this start
                    process.send_signal(signal.SIGTERM)
                try:
                    code = await process.wait()
                finally:
                    self.processes.pop(index, None)
            self.exit_codes[index] = code
            if stopping.is_set():
                logger.info("worker %d (pid %s) %s", index, pid, describe_exit(code))
                return
            uptime = loop.time() - started
            delay = backoff.after_crash(uptime)
            self.restarts += 1
            logger.error(
                "worker %d (pid %s) %s after %.1fs; restarting in %.1fs",
                index,
                pid,
                describe_exit(code),
                uptime,
                delay,
            )
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stopping.wait()

    def _install_signals(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in sigs}
        for sig in sigs:
            loop.add_signal_handler(sig, self.request_stop)

        def restore() -> None:
            for sig in sigs:
                loop.remove_signal_handler(sig)
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])

        return restore
