"""The app the WebSocket load test serves with uvicorn in a process of its own.

Configured by the environment: CHANNEL__WS__BACKEND=redis, CHANNEL__WS__URL, a key prefix of
the test's own, and WS_QUEUE_SIZE. GET /stats reports the manager's counts, the largest queue
seen so far (sampled every 10 ms) and the process's resident memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, WebSocket

from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import lifespan, serve_websocket
from bento.managers.websocket import WebSocketManager

container = BentoContainer()
peak = {"queued_max": 0}
closed: dict[str, dict[str, Any]] = {}


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def sample() -> None:
    while True:
        manager = WebSocketManager.get_instance("ws")
        peak["queued_max"] = max(peak["queued_max"], manager.stats()["queued_max"])
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def run(app: FastAPI) -> AsyncIterator[None]:
    async with lifespan(container, register=False, start=())(app):
        await WebSocketManager.get_instance("ws").initialize(queue_size=int(os.environ["WS_QUEUE_SIZE"]))
        sampler = asyncio.create_task(sample())
        yield
        sampler.cancel()


app = FastAPI(lifespan=run)


@app.websocket("/ws/{client_id}")
async def ws(websocket: WebSocket, client_id: str) -> None:
    client = await serve_websocket(websocket, WebSocketManager.get_instance("ws"), client_id=client_id)
    closed[client.id] = client.snapshot()


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return {**WebSocketManager.get_instance("ws").stats(), **peak, "rss_kib": rss_kib(), "closed": closed}
