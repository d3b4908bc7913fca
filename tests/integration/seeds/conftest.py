"""Seed examples against real servers: a fresh container per test (unique service name, so
consumer groups never collide), and per-backend `configure(...)` arguments with the seed's
values plus a unique namespace (key prefix, exchange, stream), cleaned up afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from dependency_injector import providers
from seed_support import NATS, RABBITMQ, REDIS

from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings
from bento.managers import runtime
from servers import require_tcp
from servers.pulsar_lite import PulsarLite

FAST_RETRIES = {"max_attempts": 3, "retry_delays": [0.05, 0.1], "drain_timeout": 2.0}


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def app_container(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    uid: str,
    redis_cleanup: list[str],
    nats_streams: list[str],
) -> AsyncIterator[BentoContainer]:
    """Depends on the clean-up fixtures so that it is shut down before they delete anything."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)
    runtime.reset_container()
    container = BentoContainer()
    container.settings.override(providers.Object(load_settings(service={"name": f"seed-{uid}"})))
    runtime.use_container(container)
    yield container
    await runtime.shutdown(container)
    runtime.reset_container()


@pytest.fixture
def redis_cleanup() -> Iterator[list[str]]:
    """Key prefixes (on DBs 0-5) to delete after the test."""
    prefixes: list[str] = []
    yield prefixes
    for db in range(6):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        try:
            for prefix in prefixes:
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                if keys:
                    client.delete(*keys)
        except redis.RedisError:
            pass  # the server is gone: nothing to clean
        finally:
            client.close()


@pytest.fixture(scope="module")
def pulsar_broker() -> Iterator[PulsarLite]:
    broker = PulsarLite()
    try:
        broker.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        broker.cleanup()
        require_tcp(f"pulsar-lite ({exc})", "127.0.0.1", broker.port, "pip install pulsar-lite")
        raise
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
async def nats_streams() -> AsyncIterator[list[str]]:
    names: list[str] = []
    yield names
    if not names:
        return
    import nats
    import nats.errors

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    for name in names:
        for stream in (name, f"{name}_DLQ"):
            with contextlib.suppress(nats.errors.Error):
                await js.delete_stream(stream)
    await nc.close()


@pytest.fixture
def event_backend(
    request: pytest.FixtureRequest, uid: str, redis_cleanup: list[str], nats_streams: list[str]
) -> dict[str, Any]:
    """`configure(...)` arguments of the backend named by the test's parameter."""
    backend = request.param
    if backend == "memory":
        return {"backend": "memory", **FAST_RETRIES}
    if backend in {"redis", "redis-broadcast"}:
        require_tcp(*REDIS)
        redis_cleanup.append(f"events:{uid}:")
        options = {"backend": "redis", "url": "redis://localhost:6379/0", "key_prefix": f"events:{uid}:"}
        if backend == "redis-broadcast":
            options["mode"] = "broadcast"
        return {**options, **FAST_RETRIES, "block_ms": 100}
    if backend == "rabbitmq":
        require_tcp(*RABBITMQ)
        return {
            "backend": "rabbitmq",
            "url": "amqp://guest:guest@localhost:5672/",
            "exchange_name": f"app.events.{uid}",
            "exchange_type": "topic",
            "queue_expires": 60,
            **FAST_RETRIES,
        }
    if backend == "nats":
        require_tcp(*NATS)
        nats_streams.append(f"SEED_{uid}")
        return {
            "backend": "nats",
            "servers": ["nats://127.0.0.1:4222"],
            "stream_name": f"SEED_{uid}",
            "subject_prefix": f"seed{uid}",
            "storage": "memory",
            "fetch_timeout": 0.5,
            **FAST_RETRIES,
        }
    if backend == "pulsar":
        broker: PulsarLite = request.getfixturevalue("pulsar_broker")
        return {"backend": "pulsar", "service_url": broker.url, "namespace": f"ns{uid}", **FAST_RETRIES}
    raise ValueError(backend)
