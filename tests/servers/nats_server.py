"""A private nats-server with JetStream on a port of its own, for tests that stop it.

The shared NATS on 4222 must never be stopped by a test. This one keeps its JetStream
store in its own folder, so `stop()` then `start()` (same port, same folder) is a broker
restart that keeps file-storage streams, as a real one does.
"""

from __future__ import annotations

import logging
import os
import shutil

from servers import free_port, tcp_reachable
from servers._private_server import PrivateServer

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "apt-get install nats-server"


class NatsServer(PrivateServer):
    """One nats-server process on 127.0.0.1 with JetStream; a context manager that stops it by PID."""

    _program = "nats-server"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        super().__init__(data_dir, prefix="bento-nats-")
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        binary = shutil.which("nats-server")
        if binary is None:
            raise FileNotFoundError(f"nats-server is not installed: {INSTALL_COMMAND}")
        if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            raise RuntimeError(f"port {self.port} is already in use; refusing to start nats-server there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "nats.log"
        command = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.data_dir / "js")]
        process = self._launch(command, log_path=log_path)
        self._wait_ready(
            lambda: tcp_reachable("127.0.0.1", self.port, timeout=0.2),
            timeout=timeout,
            timeout_message=f"nats-server did not listen on port {self.port} within {timeout}s",
            log_hint=log_path,
            interval=0.02,
        )
        logger.info("nats-server pid %d serving %s", process.pid, self.url)
