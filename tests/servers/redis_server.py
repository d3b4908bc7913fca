"""A private redis-server (no persistence) on a port of its own, for tests that stop it.

The shared Redis on 6379 must never be stopped by a test; a test that takes the server away
(the health checker's outage, `bento health` seeing a component down) starts this one,
stops it by PID and starts it again on the same port with `restart()`. Nothing survives a
restart (`--save ''`, no AOF), as with a crashed cache server.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

import pytest

from servers import free_port, in_ci, tcp_reachable
from servers._private_server import PrivateServer

logger = logging.getLogger(__name__)

#: How to get the binary, for skip and error messages.
INSTALL_COMMAND = "apt-get install redis-server"


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(f"redis-server is not installed: {INSTALL_COMMAND}")
    return binary


class RedisServer(PrivateServer):
    """One redis-server process on 127.0.0.1; a context manager that always stops it (by PID)."""

    _program = "redis-server"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        super().__init__(data_dir, prefix="bento-redis-")
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            raise RuntimeError(f"port {self.port} is already in use; refusing to start redis-server there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "redis.log"
        process = self._launch(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            log_path=log_path,
        )
        self._wait_ready(
            lambda: tcp_reachable("127.0.0.1", self.port, timeout=0.2),
            timeout=timeout,
            timeout_message=f"redis-server did not listen on port {self.port} within {timeout}s",
            log_hint=log_path,
            interval=0.02,
        )
        logger.info("redis-server pid %d serving %s", process.pid, self.url)

    def restart(self, *, pause: float = 0.0) -> None:
        """Stop, wait `pause` seconds, and start again on the same port (empty)."""
        self.stop()
        deadline = time.monotonic() + 10
        while tcp_reachable("127.0.0.1", self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(pause)
        self.start()

    def kill(self) -> None:
        """SIGKILL the server by PID (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._forget_process()


class PrivateRedis(RedisServer):
    """A `RedisServer` whose `start()` fails (CI) or skips (locally) the calling test when
    redis-server is missing or does not start, naming how to install it."""

    def start(self, timeout: float = 10.0) -> None:
        try:
            super().start(timeout)
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.cleanup()
            reason = f"a private redis-server could not be started ({exc}); install it with: {INSTALL_COMMAND}"
            if in_ci():
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)
