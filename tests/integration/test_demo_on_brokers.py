"""The orders demo, unchanged, on every broker: only configuration differs."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import require_tcp
from servers.pulsar_lite import PulsarLite

SERVICES = {
    "rabbitmq": ("RabbitMQ", 5672, "rabbitmq-server -detached"),
    "redis": ("Redis", 6379, "redis-server --daemonize yes --port 6379 --save ''"),
    "nats": ("NATS", 4222, "nats-server -js -a 127.0.0.1 -p 4222"),
}


@pytest.fixture(scope="module")
def pulsar_url() -> Iterator[str]:
    with PulsarLite() as broker:
        yield broker.url


def run_demo(tmp_path: Path, backend: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "CLICKHOUSE", "READ_MODEL"))}
    env.update(EVENT__BACKEND=backend, **extra)  # the demo's own fast retries show the dead letter on every bus
    result = subprocess.run(
        [sys.executable, "-m", "bento.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check(out: str, bus: str) -> None:
    assert f"bus={bus}" in out
    assert "o-1: ann@example.com  3 x tea   13.50  paid   stock reserved: yes" in out
    assert out.count("after 3 attempts: DomainError: product cup: 5 wanted, 2 in stock") == 1
    assert "correlation id: yes" in out


@pytest.mark.parametrize("backend", sorted(SERVICES))
def test_demo_runs_unchanged_on_a_broker(tmp_path: Path, backend: str) -> None:
    name, port, start = SERVICES[backend]
    require_tcp(name, "127.0.0.1", port, start)
    bus = {"rabbitmq": "RabbitMQMessageBus", "redis": "RedisMessageBus", "nats": "NatsMessageBus"}[backend]
    first = run_demo(tmp_path, backend)
    check(first, bus)
    assert "Cleaned up: removed the run's" in first  # its exchange, keys or stream, unless --keep
    second = run_demo(tmp_path, backend)  # a second run on the same data adds to it
    assert "run 2:" in second and "after 3 attempts: DomainError: product cup-2: 5 wanted, 2 in stock" in second


def test_demo_runs_unchanged_on_pulsar(tmp_path: Path, pulsar_url: str) -> None:
    check(run_demo(tmp_path, "pulsar", EVENT__SERVICE_URL=pulsar_url), "PulsarMessageBus")
