"""A private redis-server on a free port, stopped by PID: for tests that take Redis away."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from servers import free_port, in_ci, require_tcp, tcp_reachable


class PrivateRedis:
    """`redis-server --port <free> --save ''`, stopped by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (apt-get install redis-server)"
            if in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.1):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                require_tcp("private redis-server", "127.0.0.1", self.port, "redis-server --port N --save ''")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
