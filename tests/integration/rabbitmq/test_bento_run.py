"""`bento run` as an operator uses it: real OS processes on RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import types
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bento import Command
from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.ports.message_bus import MessageBus
from bento.application.remote import RemoteCommandBus, RequestReply
from bento.examples.orders.cleanup import cleanup_broker
from servers import free_port
from servers.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parents[3]

SERVICE = """
import asyncio
from dependency_injector import providers
from bento import Command, CommandHandler, DomainEvent
from bento.application.projections import Projection, handles
from bento.infrastructure.container import BentoContainer


class Slow(Command, name="{wire}.slow"):
    n: int


class Ticked(DomainEvent, name="{wire}.ticked"):
    n: int


class SlowHandler(CommandHandler[Slow, int]):
    async def handle(self, command: Slow) -> int:
        await asyncio.sleep(0.5)
        return command.n


async def seeded(store):
    for n in range({seed}):
        await store.append(f"t-{{n}}", [Ticked(n=n)], 0)
    yield store


class SlowProjection(Projection, name="{wire}.slow_projection"):
    def __init__(self, store: object) -> None:
        self.store = store

    @handles(Ticked)
    async def ticked(self, event: Ticked, stored: object) -> None:
        await asyncio.sleep(0.05)


class Worker(BentoContainer):
    slow = providers.Singleton(SlowHandler)


class Reader(BentoContainer):
    store = providers.Resource(seeded, BentoContainer.event_store)
    projection = providers.Singleton(SlowProjection, store)
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    wire = f"run{uuid.uuid4().hex[:10]}"
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE.format(wire=wire, seed=40)))
    yield tmp_path, wire


def _start(cwd: Path, target: str, rabbitmq_url: str, *extra: str, **env: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE"))}
    full.update(PYTHONPATH=str(ROOT / "src"), COMMAND__URL=rabbitmq_url, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "bento.cli", "run", target, *extra],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(process: subprocess.Popen[str], timeout: float = 30.0) -> list[str]:
    assert process.stderr is not None
    lines: list[str] = []
    os.set_blocking(process.stderr.fileno(), True)
    while True:
        line = process.stderr.readline()
        if not line:
            raise AssertionError(f"bento run exited ({process.poll()}): {''.join(lines)}")
        lines.append(line)
        if " ready: " in line:
            return lines


def _slow(wire: str) -> type[Command]:
    return types.new_class(
        "Slow", (Command,), {"name": f"{wire}.slow"}, lambda ns: ns.update({"__annotations__": {"n": int}})
    )


@asynccontextmanager
async def _caller(rabbitmq_url: str) -> AsyncIterator[RemoteCommandBus]:
    settings = RabbitMQSettings(url=rabbitmq_url)

    @asynccontextmanager
    async def connect() -> AsyncIterator[MessageBus]:
        async with RabbitMQMessageBus(settings) as bus:
            yield bus

    link = RequestReply(connect, service="test-caller", timeout=30.0)
    try:
        yield RemoteCommandBus(link)
    finally:
        await link.close()


async def test_sigterm_with_50_in_flight_loses_none(service: tuple[Path, str], rabbitmq_url: str) -> None:
    cwd, wire = service
    first = _start(cwd, "svc:Worker", rabbitmq_url, SERVICE__NAME="first", SERVICE__GRACE_PERIOD="20")
    second: subprocess.Popen[str] | None = None
    try:
        lines = await asyncio.to_thread(_wait_ready, first)
        assert any(f"command handler: topic {wire}.slow group bento.handlers.{wire}.slow" in line for line in lines)
        slow = _slow(wire)
        async with _caller(rabbitmq_url) as commands:
            calls = [asyncio.create_task(commands.dispatch(slow(n=n))) for n in range(50)]  # type: ignore[call-arg]
            await asyncio.sleep(0.3)  # the first handlers are running
            first.send_signal(signal.SIGTERM)
            second = _start(cwd, "svc:Worker", rabbitmq_url, SERVICE__NAME="second")
            results = await asyncio.wait_for(asyncio.gather(*calls), 60)
        assert results == list(range(50))  # each completed in the first or was redelivered to the second
        assert await asyncio.to_thread(first.wait, 30) == 0
        assert "stopped" in (first.stderr.read() if first.stderr else "")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


async def test_readyz_is_503_until_the_projection_caught_up(service: tuple[Path, str], rabbitmq_url: str) -> None:
    cwd, _ = service
    port = free_port()
    reader = _start(cwd, "svc:Reader", rabbitmq_url, "--http", f"127.0.0.1:{port}", SERVICE__NAME="reader")
    try:
        seen: list[int] = []
        bodies: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not seen or seen[-1] != 200:
                status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
                if status:
                    seen.append(status)
                    bodies.append(body)
                await asyncio.sleep(0.05)
        assert seen[0] == 503 and seen[-1] == 200
        lagging = [b for b in bodies if b.get("lag")]
        assert lagging and any(v > 0 for v in lagging[0]["lag"].values())
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/livez"))[0] == 200
    finally:
        reader.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(reader.wait, 30) == 0


def test_a_bad_setting_exits_non_zero_with_one_line(service: tuple[Path, str], rabbitmq_url: str) -> None:
    cwd, _ = service
    process = _start(cwd, "svc:Worker", rabbitmq_url, COMMAND__BACKEND="carrier-pigeon")
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert len(err.strip().splitlines()) == 1 and "COMMAND__" in err and "carrier-pigeon" in err


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_show_the_counts_of_a_known_workload(service: tuple[Path, str], rabbitmq_url: str) -> None:
    cwd, wire = service
    port = free_port()
    worker = _start(cwd, "svc:Worker", rabbitmq_url, "--http", f"127.0.0.1:{port}", SERVICE__NAME="metered")
    try:
        await asyncio.to_thread(_wait_ready, worker)
        slow = _slow(wire)
        async with _caller(rabbitmq_url) as commands:
            results = await asyncio.gather(*(commands.dispatch(slow(n=n)) for n in range(12)))  # type: ignore[call-arg]
        assert sorted(results) == list(range(12))
        samples = await asyncio.to_thread(_scrape, f"http://127.0.0.1:{port}/metrics")
        labels = (
            ("messaging_consumer_group_name", f"bento.handlers.{wire}.slow"),
            ("messaging_destination_name", f"{wire}.slow"),
            ("messaging_system", "rabbitmq"),
        )
        assert samples[("messaging_client_consumed_messages_total", labels)] == 12
        timed = (*labels[:2], ("error_type", ""), labels[2])
        assert samples[("messaging_process_duration_seconds_count", tuple(sorted(timed)))] == 12
        assert samples[("messaging_process_duration_seconds_sum", tuple(sorted(timed)))] >= 12 * 0.5
        handler = (("bento_message_type", f"{wire}.slow"), ("bento_outcome", "ack"))
        assert samples[("bento_handler_duration_seconds_count", handler)] == 12
        replies = [v for (name, _), v in samples.items() if name == "messaging_client_sent_messages_total"]
        assert sum(replies) >= 12  # one reply per command
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0


LISTENER = """
from dependency_injector import providers
from bento import DomainEvent, EventHandler
from bento.infrastructure.container import BentoContainer


class Noted(DomainEvent, name="{wire}.noted"):
    n: int


class OnNoted(EventHandler[Noted]):
    async def handle(self, event: Noted) -> None:
        return None


class Listener(BentoContainer):
    on_noted = providers.Singleton(OnNoted)
"""


async def test_readyz_names_the_component_that_went_down(tmp_path: Path, rabbitmq_url: str) -> None:
    """The inbox on a private redis-server: /readyz is 200 with every component up, then 503
    naming the inbox once that server is gone, while /livez stays 200."""
    wire = f"ready{uuid.uuid4().hex[:10]}"
    (tmp_path / "listener.py").write_text(textwrap.dedent(LISTENER.format(wire=wire)))
    redis = PrivateRedis()
    redis.start()
    port = free_port()
    exchange = f"bento.test.{wire}"
    listener = _start(
        tmp_path,
        "listener:Listener",
        rabbitmq_url,
        "--http",
        f"127.0.0.1:{port}",
        SERVICE__NAME="listener",
        EVENT__URL=rabbitmq_url,
        EVENT__EXCHANGE_NAME=exchange,
        INBOX__BACKEND="redis",
        INBOX__URL=redis.url,
    )
    try:
        await asyncio.to_thread(_wait_ready, listener)
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["ready"] is True, body
        components = body["components"]
        assert {"event:default", "inbox", "event_store", "checkpoint_store"} <= set(components)
        assert all(c["status"] == "up" for c in components.values()), components
        redis.kill()
        async with asyncio.timeout(20):
            while True:
                status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
                if status == 503:
                    break
                await asyncio.sleep(0.1)
        assert body["ready"] is False and body["reason"] == "down: inbox", body
        assert body["components"]["inbox"]["status"] == "down" and body["components"]["inbox"]["detail"]
        assert body["components"]["event:default"]["status"] == "up"  # RabbitMQ is still there
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/livez"))[0] == 200
    finally:
        redis.kill()
        listener.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(listener.wait, 30)
        settings = RabbitMQSettings(url=rabbitmq_url, exchange_name=exchange)
        await cleanup_broker(settings, [(f"{wire}.noted", "listener.OnNoted")])
    assert code == 0
