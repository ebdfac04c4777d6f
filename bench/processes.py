"""Starting measured runs as child processes and reading their JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Child:
    """One `python -m bench.child` process; `lines()` yields its notes, `result` its report."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.result: dict[str, Any] | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.stderr = b""

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.child",
            json.dumps(self.job),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            limit=1 << 24,  # a shared-group result carries the seen-id map (n bytes, hex)
        )

    async def read(self, on_note: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Read notes until the result line; then wait for the exit."""
        process = self.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        stderr = asyncio.create_task(process.stderr.read())
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            if not line.startswith(b"{"):
                continue  # a contender's own output
            note = json.loads(line)
            if "result" in note:
                self.result = note["result"]
            elif on_note is not None:
                on_note(note)
        await process.wait()
        self.stderr = await stderr
        if self.result is None:
            tail = self.stderr.decode(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(
                f"bench child {self.job.get('kind')}/{self.job.get('contender', self.job.get('variant'))} "
                f"exited with {process.returncode} and no result:\n" + "\n".join(tail)
            )
        return self.result

    def tell(self, line: str = "stop") -> None:
        """Write a line to the child's stdin (the shared-group runs stop on it)."""
        process = self.process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(line.encode() + b"\n")

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


async def run_child(job: dict[str, Any], limit_s: float) -> dict[str, Any]:
    """Run one child to its result, killing it if it overruns `limit_s` seconds."""
    child = Child(job)
    await child.start()
    try:
        async with asyncio.timeout(limit_s):
            return await child.read()
    finally:
        child.kill()
        if child.process is not None:
            await child.process.wait()
