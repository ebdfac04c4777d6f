"""Run the recorder app in a subprocess and read what it handled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class RecorderProcess:
    def __init__(self, out: Path, **env: str) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.apps.recorder"],
            cwd=ROOT,
            env={**os.environ, "OUT": str(out), **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def lines(self, kind: str = "done") -> list[tuple[int, int, int]]:
        if not self.out.exists():
            return []
        rows = []
        for line in self.out.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == kind:
                rows.append((int(parts[1]), int(parts[2]), int(parts[3])))
        return rows

    async def wait_for(self, predicate: object, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():  # type: ignore[operator]
                if self.process.poll() is not None and not predicate():  # type: ignore[operator]
                    raise AssertionError(f"app exited early: {self.stderr()}")
                await asyncio.sleep(0.05)

    async def exit_code(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self.process.wait, timeout)

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
