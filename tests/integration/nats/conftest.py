"""Fixtures for the NATS JetStream adapter: a real server at 127.0.0.1:4222, and a
stream plus subject prefix of its own per test, deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client

from bento.adapters.nats import NatsSettings
from servers import free_port, in_ci, require_tcp, tcp_reachable

NATS_URL = "nats://127.0.0.1:4222"
START_COMMAND = "nats-server -js (JetStream enabled) on 127.0.0.1:4222"


@pytest.fixture
def nats_url() -> str:
    require_tcp("NATS JetStream", "127.0.0.1", 4222, START_COMMAND)
    return NATS_URL


@pytest.fixture
async def nats_settings(nats_url: str) -> AsyncIterator[Callable[..., NatsSettings]]:
    """A factory of settings sharing one unique stream and prefix; streams deleted after."""
    suffix = uuid.uuid4().hex[:10]
    stream, prefix = f"BT_{suffix}", f"bt{suffix}"

    def make(**overrides: object) -> NatsSettings:
        fields: dict[str, object] = {
            "servers": [nats_url],
            "stream_name": stream,
            "subject_prefix": prefix,
            "max_attempts": 3,
            "retry_delays": [0.05, 0.1],
            "fetch_timeout": 0.5,
            "drain_timeout": 2.0,
            "partitions": 8,
        }
        fields.update(overrides)
        return NatsSettings.model_validate(fields)

    yield make
    nc = Client()
    await nc.connect(nats_url)
    js = nc.jetstream()
    for name in (stream, f"{stream}_DLQ"):
        with contextlib.suppress(nats.errors.Error):  # a test may never have created it
            await js.delete_stream(name)
    await nc.close()


class PrivateNats:
    """A nats-server with JetStream on a free loopback port and its own store dir."""

    def __init__(self, store: Path, config: str = "") -> None:
        self.port, self.store, self.config = free_port(), store, config
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        binary = shutil.which("nats-server")
        assert binary is not None
        options: list[str] = []
        if self.config:
            conf = self.store.parent / "nats.conf"
            conf.write_text(self.config)
            options = ["-c", str(conf)]
        self.process = await asyncio.create_subprocess_exec(
            binary,
            *options,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"nats-server did not listen on {self.port} within 10 s")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _require_nats_server() -> None:
    if shutil.which("nats-server") is None:
        message = "nats-server is not installed; apt-get install nats-server"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture
async def private_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    _require_nats_server()
    server = PrivateNats(tmp_path / "jetstream")
    await server.start()
    yield server
    await server.kill()


#: A private server's limits, small so that tests can reach them cheaply.
SMALL_MAX_PAYLOAD = 4096
SMALL_MAX_CONTROL_LINE = 1024


@pytest.fixture
async def small_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    """A private nats-server whose max_payload is 4 KiB and max_control_line 1 KiB."""
    _require_nats_server()
    config = f"max_payload: {SMALL_MAX_PAYLOAD}\nmax_control_line: {SMALL_MAX_CONTROL_LINE}\n"
    server = PrivateNats(tmp_path / "jetstream", config)
    await server.start()
    yield server
    await server.kill()
