"""A private pulsar-lite broker for tests and benchmarks.

pulsar-lite (PyPI) is a Rust broker that speaks the Pulsar binary protocol. Its own
Python helper picks a port by itself and writes a fixed log file, so this launcher
runs the packaged binary directly: a free port, a data folder of our own, and a TOML
that turns the metrics endpoint off (otherwise it binds 0.0.0.0:8080 and two brokers
collide). `restart()` stops the process and starts it again on the same port and data
folder, which is how the restart-durability test simulates a broker crash.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from servers import free_port, tcp_reachable
from servers._private_server import PrivateServer, packaged_binary

logger = logging.getLogger(__name__)

_CONFIG = "[metrics]\nenabled = false\n"


def pulsar_lite_binary() -> Path:
    """The broker executable shipped inside the installed `pulsar_lite` package."""
    return packaged_binary("pulsar_lite", "pulsar-lite", "pip install pulsar-lite")


class PulsarLite(PrivateServer):
    """One broker process; a context manager that always stops it (by PID)."""

    _program = "pulsar-lite"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        super().__init__(data_dir, prefix="bento-pulsar-lite-")
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"pulsar://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            # A leftover broker on this port would silently serve us: refuse instead.
            raise RuntimeError(f"port {self.port} is already in use; refusing to start pulsar-lite there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "lite.toml"
        config.write_text(_CONFIG)
        log_path = self.data_dir / "broker.log"
        process = self._launch(
            [
                str(pulsar_lite_binary()),
                "--addr",
                f"127.0.0.1:{self.port}",
                "--db-path",
                str(self.data_dir / "broker.db"),
                "--config",
                str(config),
                "--log-level",
                "warn",
            ],
            log_path=log_path,
        )
        self._wait_ready(
            lambda: tcp_reachable("127.0.0.1", self.port, timeout=0.2),
            timeout=timeout,
            timeout_message=f"pulsar-lite did not listen on port {self.port} within {timeout}s",
            log_hint=log_path,
            interval=0.02,
        )
        logger.info("pulsar-lite pid %d serving %s (data in %s)", process.pid, self.url, self.data_dir)

    def kill(self) -> None:
        """SIGKILL the broker (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._forget_process()

    def restart(self, *, crash: bool = False) -> None:
        """Stop (or kill) and start again on the same port and data folder."""
        if crash:
            self.kill()
        else:
            self.stop()
        deadline = time.monotonic() + 10
        while tcp_reachable("127.0.0.1", self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()
