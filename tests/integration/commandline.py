"""Run a Python module (e.g. `evkafka run ...`) in a subprocess and follow its stderr lines."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Command:
    """A child process whose stderr lines are collected as they arrive."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, **env: str) -> Command:
        """`python ARGS` from the repository root, with `env` added to the environment."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @classmethod
    async def evkafka(cls, *args: str, **env: str) -> Command:
        """`python -m evkafka ARGS`."""
        return await cls.start("-m", "evkafka", *args, **env)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new_line.set()
        self._new_line.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    async def wait_until(self, done: Callable[[list[str]], bool], timeout: float = 30.0) -> None:
        """Return once `done(lines)` holds; fail if the process ends first or time runs out."""
        try:
            async with asyncio.timeout(timeout):
                while not done(self.lines):
                    if self._reader.done():
                        raise AssertionError(f"the process ended first:\n{self.log}")
                    self._new_line.clear()
                    await self._new_line.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s:\n{self.log}") from None

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """The first line containing `text`, once it is there."""
        await self.wait_until(lambda lines: any(text in line for line in lines), timeout)
        return next(line for line in self.lines if text in line)

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exit_code(self, timeout: float = 30.0) -> int:
        """Wait for the exit (and the last stderr line) and return the code."""
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
                await self._reader
        except TimeoutError:
            raise AssertionError(f"still running after {timeout}s:\n{self.log}") from None
        return code

    async def kill(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        try:  # EOF comes once every process sharing the pipe (its workers too) is gone
            async with asyncio.timeout(10):
                await self._reader
        except TimeoutError:
            self._reader.cancel()
