"""Ctrl-C with an SSE client connected stops uvicorn at once: the stream ends when the server
begins to shut down, not when the client gives up (uvicorn waits for open responses before it
runs the lifespan's shutdown)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servers import free_port, tcp_reachable

ROOT = Path(__file__).resolve().parents[3]
APP = """
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import channel_stream, lifespan
from bento.managers.channel import ChannelManager

container = BentoContainer()


async def open_channels() -> None:
    await ChannelManager.get_instance("sse").initialize(backend="memory")


app = FastAPI(lifespan=lifespan(container, on_startup=[open_channels]))


@app.get("/sse")
async def stream() -> StreamingResponse:
    return channel_stream(ChannelManager.get_instance("sse"), "user:1", keepalive=60.0)
"""


def test_sigint_with_an_sse_client_connected_stops_the_server_promptly(tmp_path: Path) -> None:
    (tmp_path / "sse_app.py").write_text(APP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "sse_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not tcp_reachable("127.0.0.1", port, timeout=0.2):
            assert server.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        with httpx.Client(timeout=30) as client, client.stream("GET", f"http://127.0.0.1:{port}/sse") as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            started = time.monotonic()
            server.send_signal(signal.SIGINT)
            server.wait(timeout=15)
            stopped_after = time.monotonic() - started
        assert stopped_after < 5.0, f"uvicorn took {stopped_after:.1f} s to stop"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
