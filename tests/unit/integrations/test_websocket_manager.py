"""WebSocketManager without network: targets, order, bounded queues and both overflow policies,
clean-up; and the Starlette endpoint helper through Starlette's test client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import serve_websocket
from bento.managers import runtime
from bento.managers.websocket import (
    CLOSE_SLOW_CLIENT,
    ClientConnection,
    WebSocketManager,
    WebSocketMessage,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


@pytest.fixture
async def container() -> AsyncIterator[BentoContainer]:
    runtime.reset_container()
    built = BentoContainer()
    runtime.use_container(built)
    yield built
    await runtime.shutdown(built)
    runtime.reset_container()


async def drain(client: ClientConnection, count: int) -> list[dict[str, object]]:
    out = []
    for _ in range(count):
        async with asyncio.timeout(2):
            text = await client.next()
        assert text is not None
        out.append(json.loads(text))
    return out


async def settle(manager: WebSocketManager) -> None:
    for _ in range(100):  # the listener hands channel messages over on the next loop turns
        await asyncio.sleep(0)


async def test_the_seed_example_and_targets(container: BentoContainer) -> None:
    ws_manager = WebSocketManager()
    assert ws_manager is WebSocketManager.get_instance()
    alice = ws_manager.connect("alice", topics=["orders:eu"])
    bob = ws_manager.connect("bob", topics=["orders:us", "news"])
    message = WebSocketMessage(type="notification", data={"title": "系统通知", "content": "任务已完成"})
    await ws_manager.broadcast(message)
    await ws_manager.send_to(WebSocketMessage(type="dm", data=1), client_id="alice")
    await ws_manager.send_to(WebSocketMessage(type="topic", data=2), topic="news")
    await ws_manager.send_to(WebSocketMessage(type="pattern", data=3), pattern="orders:*")
    got_alice = await drain(alice, 3)
    got_bob = await drain(bob, 3)
    assert [m["type"] for m in got_alice] == ["notification", "dm", "pattern"]
    assert [m["type"] for m in got_bob] == ["notification", "topic", "pattern"]
    assert got_alice[0]["data"] == {"title": "系统通知", "content": "任务已完成"}
    assert got_alice[0]["id"] == message.id
    with pytest.raises(ValueError, match="exactly one"):
        await ws_manager.send_to(message, client_id="alice", topic="news")


async def test_a_stalled_client_is_disconnected_and_freed(container: BentoContainer) -> None:
    manager = await WebSocketManager.get_instance().initialize(queue_size=5)
    stalled, reader = manager.connect("stalled"), manager.connect("reader")
    for n in range(20):
        await manager.broadcast(WebSocketMessage(type="tick", data=n))
        await settle(manager)
        assert [m["data"] for m in await drain(reader, 1)] == [n]
    assert stalled.close_code == CLOSE_SLOW_CLIENT and "5 messages queued" in (stalled.close_reason or "")
    assert stalled.queued == 0 and stalled not in manager.clients and stalled.dropped == 6
    assert stalled.closing.is_set() and await stalled.next() is None
    assert manager.stats()["disconnected_slow"] == 1


async def test_drop_oldest_keeps_the_latest(container: BentoContainer) -> None:
    manager = await WebSocketManager.get_instance("feed").initialize(queue_size=3, overflow="drop_oldest")
    slow = manager.connect()
    for n in range(10):
        await manager.broadcast(WebSocketMessage(type="tick", data=n))
    await settle(manager)
    assert slow.dropped == 7 and slow in manager.clients
    assert [m["data"] for m in await drain(slow, 3)] == [7, 8, 9]


async def test_cleanup_closes_every_client(container: BentoContainer) -> None:
    manager = await WebSocketManager.get_instance().initialize()
    client = manager.connect("x", topics=["t"])
    await runtime.shutdown(container)
    assert client.close_code == 1001 and not manager.clients and not manager.initialized


def test_the_endpoint_helper_serves_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.reset_container()
    runtime.use_container(BentoContainer())
    app = FastAPI()
    echoed: list[str] = []

    @app.websocket("/ws/{user_id}")
    async def ws(websocket: WebSocket, user_id: str) -> None:
        async def on_message(client: ClientConnection, message: WebSocketMessage) -> None:
            echoed.append(message.type)
            await WebSocketManager().send_to(WebSocketMessage(type="echo", data=message.data), client_id=client.id)

        await serve_websocket(websocket, client_id=user_id, on_message=on_message)

    @app.post("/broadcast/{topic}")
    async def broadcast(topic: str) -> dict[str, int]:
        await WebSocketManager().send_to(WebSocketMessage(type="news", data=topic), topic=topic)
        return {"clients": len(WebSocketManager().clients)}

    try:
        with TestClient(app) as http, http.websocket_connect("/ws/u1") as socket:
            socket.send_text(json.dumps({"type": "subscribe", "data": {"topic": "sport"}}))
            socket.send_text("not json")
            socket.send_text(json.dumps({"type": "hello", "data": {"n": 1}}))
            assert socket.receive_json()["type"] == "echo"
            assert http.post("/broadcast/sport").json() == {"clients": 1}
            assert socket.receive_json()["data"] == "sport"
        assert echoed == ["hello"]
        assert WebSocketManager().clients == []
    finally:
        runtime.reset_container()


def test_a_session_cancelled_by_its_server_ends_cleanly() -> None:
    """Starlette's test client (like a server shutting down) cancels the endpoint's task group
    right after the client disconnects. The helper's clean-up used to turn that into a
    CancelledError of its own making, which anyio did not recognise: the session failed about
    every other time."""
    runtime.reset_container()
    runtime.use_container(BentoContainer())
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await serve_websocket(websocket)

    try:
        with TestClient(app) as http:
            for _ in range(20):
                with http.websocket_connect("/ws") as socket:
                    socket.send_json({"type": "subscribe", "data": {"topic": "t"}})
        assert WebSocketManager().clients == []
    finally:
        runtime.reset_container()
