"""No credential is ever printed when things fail (issue 10, item 8): connect failures
against closed ports and against live servers refusing the credentials, health checks and
DEBUG-level logs (and pulsar-client's own output), for every adapter that connects.

Each attempt plants a password of its own (see tests/credentials_support.py) and fails
naming any that shows up anywhere.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bento.managers.health import collect_health
from credentials_support import Planted
from servers import free_port, require_tcp, tcp_reachable


# -- connect failures, health checks and DEBUG logs ----------------------------------------------
def _everything_about(exc: BaseException) -> str:
    parts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(getattr(current, "args", ()))]
        parts += (
            [str(v) for k, v in vars(current).items() if not k.startswith("__")] if hasattr(current, "__dict__") else []
        )
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


Attempt = Callable[[Planted, int], Awaitable[list[Callable[[], Awaitable[Any]]]]]


async def _redis_bus(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.redis import RedisMessageBus, RedisSettings

    bus = RedisMessageBus(RedisSettings(url=planted.url("redis://x/0", "-redis-bus", port=port)))
    return [bus.start, bus.health_check, bus.close]


async def _rabbitmq_bus(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
    from bento.adapters.rabbitmq.work_queue import RabbitMQWorkQueue

    settings = RabbitMQSettings(url=planted.url("amqp://x/", "-rabbit", port=port), connect_timeout=2)
    bus, queue = RabbitMQMessageBus(settings), RabbitMQWorkQueue(settings)
    return [bus.start, bus.health_check, bus.close, queue.start, queue.health_check, queue.close]


async def _nats_bus(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.nats import NatsMessageBus, NatsSettings

    settings = NatsSettings(
        servers=[planted.url("nats://x", "-nats-1", port=port), planted.token_url("nats", "-nats-2", port)],
        password=planted.word("pw-nats-password"),
        connect_timeout=0.5,
        max_reconnect_attempts=0,
    )
    bus = NatsMessageBus(settings)
    return [bus.start, bus.health_check, bus.close]


async def _pulsar_bus(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings

    settings = PulsarSettings(
        service_url=f"pulsar://127.0.0.1:{port}/?token={planted.word('pw-pulsar-query')}",
        auth_token=planted.word("pw-pulsar-token"),
        operation_timeout_seconds=1,
        connection_timeout_ms=500,
        client_logs_to_python=True,
    )
    bus = PulsarMessageBus(settings)
    return [bus.start, bus.health_check, bus.close]


async def _redis_stores(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.redis.channel import RedisChannel, RedisChannelSettings
    from bento.adapters.redis.checkpoint_store import RedisCheckpointStore
    from bento.adapters.redis.inbox import RedisInbox, RedisStoreSettings
    from bento.adapters.redis.stream_lock import RedisStreamLock
    from bento.adapters.redis.work_queue import RedisWorkQueue, RedisWorkQueueSettings

    lock = RedisStreamLock(planted.url("redis://x/0", "-lock", port=port))
    inbox = RedisInbox(RedisStoreSettings(url=planted.url("redis://x/0", "-inbox", port=port)))
    checkpoints = RedisCheckpointStore(RedisStoreSettings(url=planted.url("redis://x/0", "-checkpoints", port=port)))
    channel = RedisChannel(RedisChannelSettings(url=planted.url("redis://x/0", "-channel", port=port)))
    queue = RedisWorkQueue(RedisWorkQueueSettings(url=planted.url("redis://x/0", "-mq", port=port)))

    async def hold() -> None:
        async with lock.hold(["stream"], timeout=1):
            pass

    async def inbox_check() -> None:
        await inbox.is_processed("consumer", "id")

    return [
        hold,
        lock.close,
        inbox_check,
        inbox.close,
        lambda: checkpoints.load("projection"),
        checkpoints.close,
        channel.start,
        channel.health_check,
        channel.close,
        queue.start,
        queue.health_check,
        queue.close,
    ]


async def _clickhouse(planted: Planted, port: int) -> list[Callable[[], Awaitable[Any]]]:
    from bento.adapters.clickhouse.engine import build_engine
    from bento.adapters.clickhouse.settings import ClickHouseSettings

    engine = build_engine(
        ClickHouseSettings(mode="server", port=port, password=planted.word("pw-clickhouse"), connect_timeout=1)
    )
    return [engine.start, engine.close]


ATTEMPTS: dict[str, Attempt] = {
    "redis-bus": _redis_bus,
    "rabbitmq": _rabbitmq_bus,
    "nats": _nats_bus,
    "pulsar": _pulsar_bus,
    "redis-stores": _redis_stores,
    "clickhouse": _clickhouse,
}
#: Live servers that refuse (or ignore) the planted credentials: the error path with a real answer.
LIVE_PORTS = {"redis-bus": 6379, "rabbitmq": 5672, "redis-stores": 6379}


@pytest.mark.parametrize(
    ("name", "live"),
    [(name, False) for name in sorted(ATTEMPTS)] + [(name, True) for name in sorted(LIVE_PORTS)],
    ids=lambda value: {False: "closed-port", True: "live-server"}.get(value, value),
)
async def test_connect_failures_health_and_debug_logs_show_no_credential(
    name: str, live: bool, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    if live:
        require_tcp(name, "127.0.0.1", LIVE_PORTS[name], "see docs/SERVICES: the shared Redis and RabbitMQ")
    planted = Planted()
    port = LIVE_PORTS[name] if live else planted.closed_port
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        steps = await ATTEMPTS[name](planted, port)
        statuses = {}
        for n, step in enumerate(steps):
            try:
                outcome = await step()
            except Exception as exc:  # every failure is inspected, whatever its type
                texts.append(_everything_about(exc))
            else:
                texts.append(repr(outcome))
                if getattr(step, "__name__", "") == "health_check":
                    statuses[f"{name}-{n}"] = lambda outcome=outcome: _returns(outcome)
        if statuses:
            report = await collect_health(_EmptyContainer(), checks=statuses)
            texts.append(json.dumps(report.as_dict()))
    captured = capfd.readouterr()
    texts += [caplog.text, "\n".join(r.getMessage() for r in caplog.records), captured.out, captured.err]
    assert any("Error" in text for text in texts), texts  # something failed: the error path ran
    planted.check("\n".join(texts), f"{name} ({'live' if live else 'closed port'})")


async def _returns(value: Any) -> Any:
    return value


class _EmptyContainer:
    """`collect_health` finds nothing opened in it; the checks are passed explicitly."""


# -- a server that accepted the credentials and then went away ----------------------------------
class _PrivateServer:
    """`binary args…` on a free loopback port, stopped by PID (it never touches shared servers)."""

    def __init__(self, binary: str, *args: str) -> None:
        self.port = free_port()
        self.command = [shutil.which(binary) or binary, *(a.replace("{port}", str(self.port)) for a in args)]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _PrivateServer:
        if shutil.which(self.command[0]) is None:
            require_tcp(self.command[0], "127.0.0.1", self.port, f"apt-get install {Path(self.command[0]).name}")
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.1):
            assert time.monotonic() < deadline and self.process.poll() is None, f"{self.command} did not start"
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


async def _run_and_record(steps: list[Callable[[], Awaitable[Any]]], texts: list[str]) -> list[Any]:
    outcomes = []
    for step in steps:
        try:
            outcomes.append(await step())
        except Exception as exc:  # every failure is inspected, whatever its type
            texts.append(_everything_about(exc))
            outcomes.append(exc)
        else:
            texts.append(repr(outcomes[-1]))
    return outcomes


async def test_redis_that_dies_after_accepting_the_password_shows_none_of_it(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from bento.adapters.redis import RedisMessageBus, RedisSettings
    from bento.adapters.redis.channel import RedisChannel, RedisChannelSettings
    from bento.adapters.redis.inbox import RedisInbox, RedisStoreSettings
    from bento.adapters.redis.stream_lock import RedisStreamLock
    from bento.adapters.redis.work_queue import RedisWorkQueue, RedisWorkQueueSettings
    from bento.testing.events import make_event

    planted = Planted()
    password = planted.word("pw-private-redis")
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with _PrivateServer(
        "redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--requirepass", password
    ) as server:
        url = f"redis://default:{password}@127.0.0.1:{server.port}/0"
        bus = RedisMessageBus(RedisSettings(url=url, key_prefix="secrets:"))
        lock = RedisStreamLock(url)
        inbox = RedisInbox(RedisStoreSettings(url=url))
        channel = RedisChannel(RedisChannelSettings(url=url))
        queue = RedisWorkQueue(RedisWorkQueueSettings(url=url))
        up = await _run_and_record([bus.start, channel.start, queue.start], texts)
        assert not any(isinstance(outcome, Exception) for outcome in up), texts
        healthy = await _run_and_record([bus.health_check, channel.health_check, queue.health_check], texts)
        assert all(status.healthy for status in healthy), healthy
        server.kill()

        async def hold() -> None:
            async with lock.hold(["stream"], timeout=1):
                pass

        async def publish() -> None:
            await bus.publish("topic", make_event(1))

        down = await _run_and_record(
            [
                bus.health_check,
                channel.health_check,
                queue.health_check,
                publish,
                hold,
                lambda: inbox.is_processed("c", "id"),
            ],
            texts,
        )
        assert not any(getattr(status, "healthy", False) for status in down), down
        report = await collect_health(
            _EmptyContainer(), checks={"bus": bus.health_check, "channel": channel.health_check}
        )
        texts.append(json.dumps(report.as_dict()))
        await _run_and_record([bus.close, lock.close, inbox.close, channel.close, queue.close], texts)
    texts += [caplog.text, "\n".join(r.getMessage() for r in caplog.records)]
    assert sum("BrokerUnavailableError" in text for text in texts) >= 2, texts
    planted.check("\n".join(texts), "private Redis, killed")


async def test_nats_that_dies_after_accepting_the_password_shows_none_of_it(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from bento.adapters.nats import NatsMessageBus, NatsSettings
    from bento.testing.events import make_event

    planted = Planted()
    password = planted.word("pw-private-nats")
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with _PrivateServer(
        "nats-server",
        "-a",
        "127.0.0.1",
        "-p",
        "{port}",
        "-js",
        "-sd",
        str(tmp_path / "js"),
        "--user",
        "bento",
        "--pass",
        password,
    ) as server:
        settings = NatsSettings(
            servers=[f"nats://bento:{password}@127.0.0.1:{server.port}"], connect_timeout=1.0, reconnect_wait=0.1
        )
        bus = NatsMessageBus(settings)
        up = await _run_and_record([bus.start, bus.health_check], texts)
        assert getattr(up[1], "healthy", False), texts
        server.kill()

        async def publish() -> None:
            await bus.publish("topic", make_event(1))

        down = await _run_and_record([bus.health_check, publish], texts)
        assert not getattr(down[0], "healthy", True), down
        report = await collect_health(_EmptyContainer(), checks={"bus": bus.health_check})
        texts.append(json.dumps(report.as_dict()))
        await _run_and_record([bus.close], texts)
    texts += [caplog.text, "\n".join(r.getMessage() for r in caplog.records)]
    planted.check("\n".join(texts), "private NATS, killed")


async def test_named_managers_and_the_container_health_show_no_credential(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The seed-000 façades (RedisClient, RabbitMQClient, ChannelManager, MQManager,
    EventBusManager) configured from the environment, failing against a closed port, and
    the container's health report (what /api/health serves)."""
    from bento.infrastructure.container import BentoContainer
    from bento.managers import runtime
    from bento.managers.channel import ChannelManager
    from bento.managers.clients import RabbitMQClient, RedisClient
    from bento.managers.events import EventBusManager
    from bento.managers.mq import MQManager

    planted = Planted()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)
    env = {
        "CACHE__X__CACHE_TYPE": "redis",
        "CACHE__X__URL": planted.url("redis://x/0", "-cache"),
        "CHANNEL__X__BACKEND": "redis",
        "CHANNEL__X__URL": planted.url("redis://x/0", "-channel"),
        "MQ__X__BACKEND": "redis",
        "MQ__X__URL": planted.url("redis://x/0", "-mq"),
        "MQ__Y__BACKEND": "rabbitmq",
        "MQ__Y__URL": planted.url("amqp://x/", "-mq-rabbit"),
        "EVENT__X__BACKEND": "redis",
        "EVENT__X__URL": planted.url("redis://x/0", "-event"),
        "EVENT__Y__BACKEND": "rabbitmq",
        "EVENT__Y__URL": planted.url("amqp://x/", "-event-rabbit"),
        "EVENT__Y__CONNECT_TIMEOUT": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    runtime.reset_container()
    container = runtime.use_container(BentoContainer())
    try:
        facades = [
            RedisClient.get_instance("x"),
            RabbitMQClient.get_instance("y"),
            ChannelManager.get_instance("x"),
            MQManager.get_instance("x"),
            MQManager.get_instance("y"),
            EventBusManager.get_instance("x"),
            EventBusManager.get_instance("y"),
        ]
        failed = await _run_and_record([facade.initialize for facade in facades], texts)
        assert sum(isinstance(outcome, Exception) for outcome in failed) == len(facades), failed
        await _run_and_record([facade.health for facade in facades], texts)
        report = await collect_health(container)
        texts += [json.dumps(report.as_dict()), repr(container.settings()), json.dumps(container.settings().masked())]
    finally:
        await runtime.shutdown(container)
        runtime.reset_container()
    texts += [caplog.text, "\n".join(r.getMessage() for r in caplog.records)]
    assert sum("BrokerUnavailableError" in text for text in texts) >= len(facades), texts
    planted.check("\n".join(texts), "named managers and container health")
