"""A private redis-server stopped by PID, and an app served by uvicorn in the test's loop."""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI

from servers import free_port
from servers.redis_server import PrivateRedis

__all__ = ["PrivateRedis", "Served"]


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
