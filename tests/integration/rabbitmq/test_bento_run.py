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


class Hold(Command, name="{wire}.hold"):
    n: int


class HoldHandler(CommandHandler[Hold, None]):
    async def handle(self, command: Hold) -> None:
        if command.n < 0:
            raise ValueError("poison")
        await asyncio.sleep(3600)  # holds its one prefetched command: the rest wait in the queue


class StuckProjection(Projection, name="{wire}.stuck_projection"):
    def __init__(self, store: object) -> None:
        self.store = store  # seeded before the runtime starts

    @handles(Ticked)
    async def ticked(self, event: Ticked) -> None:
        await asyncio.sleep(3600)  # never gets past its first batch: the checkpoint stays at 0


class Worker(BentoContainer):
    slow = providers.Singleton(SlowHandler)


class Gauged(BentoContainer):
    store = providers.Resource(seeded, BentoContainer.event_store)
    hold = providers.Singleton(HoldHandler)
    projection = providers.Singleton(StuckProjection, store)


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
        command = (("bus", "command"),)  # seed 003's counters of the command transport
        assert samples[("bento_bus_messages_consumed_total", command)] == 12
        assert samples[("bento_bus_messages_published_total", command)] >= 12
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


def _command(wire_name: str) -> type[Command]:
    return types.new_class(
        "Hold", (Command,), {"name": wire_name}, lambda ns: ns.update({"__annotations__": {"n": int}})
    )


async def _delete_queues(rabbitmq_url: str, topic: str, group: str) -> None:
    import aio_pika

    from bento.adapters.rabbitmq import _topology

    settings = RabbitMQSettings(url=rabbitmq_url)
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for name in (
            _topology.subscription_queue(settings, topic, group),
            _topology.dead_letter_queue(settings, topic, group),
        ):
            await channel.queue_delete(name)


async def test_metrics_show_a_known_backlog_and_lag(service: tuple[Path, str], rabbitmq_url: str) -> None:
    """40 stored events and a projection stuck on the first: lag 40, outbox relayed (lag 0);
    7 commands sent to a handler that holds its one prefetched command after a poison one was
    dead-lettered: 5 waiting, 1 dead letter."""
    cwd, wire = service
    port = free_port()
    topic, group = f"{wire}.hold", f"bento.handlers.{wire}.hold"
    worker = _start(
        cwd,
        "svc:Gauged",
        rabbitmq_url,
        "--http",
        f"127.0.0.1:{port}",
        SERVICE__NAME="gauged",
        COMMAND__PREFETCH_COUNT="1",
        COMMAND__MAX_ATTEMPTS="1",
        COMMAND__DRAIN_TIMEOUT="1",
        TELEMETRY__GAUGE_INTERVAL="0",
    )
    try:
        await asyncio.to_thread(_wait_ready, worker)
        hold = _command(topic)
        async with _caller(rabbitmq_url) as commands:
            await commands.send(hold(n=-1))  # type: ignore[call-arg]
            for n in range(6):
                await commands.send(hold(n=n))  # type: ignore[call-arg]
        labels = tuple(
            sorted(
                (
                    ("messaging_system", "rabbitmq"),
                    ("messaging_destination_name", topic),
                    ("messaging_consumer_group_name", group),
                )
            )
        )
        wanted = {
            ("bento_messaging_consumer_backlog", labels): 5,
            ("bento_messaging_dlq_depth", labels): 1,
            ("bento_projection_lag", (("bento_projection_name", f"{wire}.stuck_projection"),)): 40,
            ("bento_outbox_lag", (("bento_outbox_name", "gauged.outbox"),)): 0,
        }
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        try:
            async with asyncio.timeout(30):
                while {key: samples.get(key) for key in wanted} != wanted:
                    await asyncio.sleep(0.2)
                    samples = await asyncio.to_thread(_scrape, f"http://127.0.0.1:{port}/metrics")
        except TimeoutError:
            bento = {
                key: value for key, value in samples.items() if key[0].startswith("bento_") and "_bucket" not in key[0]
            }
            raise AssertionError(f"gauges never reached {wanted}; last scrape: {bento}") from None
        await asyncio.sleep(1.0)  # and it stays there: nothing else is delivered or relayed
        samples = await asyncio.to_thread(_scrape, f"http://127.0.0.1:{port}/metrics")
        assert {key: samples.get(key) for key in wanted} == wanted
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert await asyncio.to_thread(worker.wait, 30) == 0
        finally:
            await _delete_queues(rabbitmq_url, topic, group)


async def test_tracing_is_turned_on_by_configuration(service: tuple[Path, str], rabbitmq_url: str) -> None:
    cwd, wire = service
    worker = _start(cwd, "svc:Worker", rabbitmq_url, SERVICE__NAME="traced", TELEMETRY__TRACING="console")
    try:
        await asyncio.to_thread(_wait_ready, worker)
        async with _caller(rabbitmq_url) as commands:
            assert await commands.dispatch(_slow(wire)(n=7)) == 7  # type: ignore[call-arg]
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=30)
    assert worker.returncode == 0
    spans = json.loads("[" + out.replace("}\n{", "},\n{") + "]")  # the console exporter's JSON objects
    handle = next(span for span in spans if span["name"] == f"handle {wire}.slow")
    assert handle["kind"] == "SpanKind.SERVER"
    assert handle["resource"]["attributes"]["service.name"] == "traced"
    assert handle["attributes"]["messaging.system"] == "rabbitmq"


def test_tracing_asked_for_without_its_exporter_is_one_line(service: tuple[Path, str], rabbitmq_url: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    try:
        import opentelemetry.exporter.otlp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("opentelemetry-exporter-otlp is installed here: nothing is missing")
    cwd, _ = service
    process = _start(cwd, "svc:Worker", rabbitmq_url, TELEMETRY__TRACING="otlp")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = [line for line in err.strip().splitlines() if "bento run:" in line]
    assert len(lines) == 1 and "opentelemetry-exporter-otlp" in lines[0]
