"""WebSocket broadcast under load, on a real uvicorn server in a process of its own, with a real
client library (`websockets`): 1,000 clients, one of which never reads.

The broadcasts come from this test process through Redis pub/sub (a second OS process, so
this is also the cross-process path): every reading client must get every broadcast, in order;
the server's per-client queues must stay within their bound; the stalled client must be
disconnected by the `disconnect` policy (1013) and forgotten, while the others carry on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings
from bento.managers import runtime
from bento.managers.websocket import WebSocketManager, WebSocketMessage
from servers import free_port, require_tcp, tcp_reachable

HERE = Path(__file__).resolve().parent
CLIENTS = 1000
BROADCASTS = 100
#: Larger than the burst of broadcasts, so clients that read (more slowly than one server
#: writes: a thousand of them share this process) are never dropped; far smaller than what
#: the stalled client is sent.
QUEUE_SIZE = 2 * BROADCASTS
#: What the stalled client is sent besides the broadcasts: random, so permessage-deflate
#: cannot shrink it into the socket buffers.
BLOB = base64.b64encode(os.urandom(48 * 1024)).decode()

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url() -> str:
    require_tcp("Redis", "127.0.0.1", 6379, "redis-server --port 6379 --save '' --appendonly no")
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix(redis_url: str) -> str:
    return f"bento-ws-test:{uuid.uuid4().hex[:10]}:"  # pub/sub channels only: no keys to delete


@pytest.fixture
def server(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "CHANNEL__WS__BACKEND": "redis",
        "CHANNEL__WS__URL": redis_url,
        "CHANNEL__WS__KEY_PREFIX": prefix,
        "CHANNEL__WS__MAX_QUEUE": "100000",
        "WS_QUEUE_SIZE": str(QUEUE_SIZE),
    }
    command = [sys.executable, "-m", "uvicorn", "ws_app:app", "--host", "127.0.0.1", "--port", str(port)]
    # Keep-alive pings off: the stalled client must meet the overflow policy, not the ping timeout.
    command += ["--ws", "websockets", "--ws-ping-interval", "3600", "--log-level", "warning", "--backlog", "2048"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not tcp_reachable("127.0.0.1", port, timeout=0.1):
            assert process.poll() is None, "the uvicorn server exited"
            assert time.monotonic() < deadline, "the uvicorn server did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def stats(address: str) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{address}/stats", timeout=10)
        found: dict[str, object] = response.json()
        return found


async def wait_for(address: str, predicate: object, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        current = await stats(address)
        if predicate(current):  # type: ignore[operator]
            return current
        assert time.monotonic() < deadline, f"server never reached the state; last stats: {current}"
        await asyncio.sleep(0.1)


def stalled_socket(address: str) -> socket.socket:
    """A socket with a tiny receive buffer, so a client that does not read stalls the server soon."""
    host, port = address.split(":")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    raw.setblocking(False)
    return raw


async def collect(conn: ClientConnection, count: int) -> list[int]:
    seen: list[int] = []
    while len(seen) < count:
        message = json.loads(await conn.recv())
        if message["type"] == "tick":
            seen.append(message["data"])
    return seen


async def test_a_thousand_clients_one_stalled(server: str, redis_url: str, prefix: str) -> None:
    connections: list[ClientConnection] = []
    for start in range(0, CLIENTS - 1, 100):
        batch = [connect(f"ws://{server}/ws/c{n}", max_size=None) for n in range(start, min(start + 100, CLIENTS - 1))]
        connections += await asyncio.gather(*batch)
    stalled = await connect(f"ws://{server}/ws/stalled", sock=stalled_socket(server), max_queue=1, max_size=None)
    before = await wait_for(server, lambda s: s["clients"] == CLIENTS)

    # This process publishes through Redis, as another replica or a worker would.
    settings = load_settings(channel={"ws": {"backend": "redis", "url": redis_url, "key_prefix": prefix}})
    container = BentoContainer()
    container.settings.override(settings)
    runtime.use_container(container)
    readers = [asyncio.create_task(collect(conn, BROADCASTS)) for conn in connections]
    started = time.perf_counter()
    try:
        publisher = WebSocketManager("ws")
        for n in range(BROADCASTS):
            await publisher.broadcast(WebSocketMessage(type="tick", data=n))
            for _ in range(6 if n < 100 else 0):  # 600 x 64 KiB: more than socket buffers and queue hold
                await publisher.send_to(WebSocketMessage(type="blob", data=BLOB), client_id="stalled")
        async with asyncio.timeout(300):  # a loaded shared machine: 30 s to 70 s measured
            received = await asyncio.gather(*readers)
        elapsed = time.perf_counter() - started
    finally:
        await runtime.shutdown(container)
        runtime.reset_container()

    assert all(seen == list(range(BROADCASTS)) for seen in received), "a reading client missed or reordered"
    after = await wait_for(server, lambda s: "stalled" in s["closed"])
    assert after["disconnected_slow"] == 1 and after["clients"] == CLIENTS - 1
    assert after["closed"]["stalled"]["dropped"] > 0  # type: ignore[index]
    assert after["queued_max"] <= QUEUE_SIZE
    grown_mib = (after["rss_kib"] - before["rss_kib"]) / 1024  # type: ignore[operator]
    print(f"\n{CLIENTS} clients x {BROADCASTS} broadcasts in {elapsed:.1f}s; server RSS +{grown_mib:.1f} MiB")
    # Coarse: the queue bound above is the precise check (the stalled client alone was sent 38 MiB).
    assert grown_mib < 128, f"server memory grew {grown_mib:.1f} MiB"

    with pytest.raises(ConnectionClosed) as closed:  # what it had buffered, then the close
        async with asyncio.timeout(30):
            while True:
                await stalled.recv()
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1013
    await asyncio.gather(*(conn.close() for conn in connections))
    await wait_for(server, lambda s: s["clients"] == 0)
