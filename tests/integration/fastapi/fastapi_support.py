"""A private redis-server stopped by PID, and an app served by uvicorn in the test's loop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
import uvicorn
from fastapi import FastAPI

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


class Served:
    """An app running in uvicorn inside the test's event loop (lifespan included)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return self
            if self.task.done():
                self.task.result()
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.01)
        raise TimeoutError("uvicorn did not start in 5 s")

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 15)
