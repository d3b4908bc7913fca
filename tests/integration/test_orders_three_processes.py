"""The orders service split across three OS processes, on each broker, with only settings changed:
commands dispatched by the client run in CommandWorker, their events reach ReadWorker's subscribers
(one of which dispatches a command back to CommandWorker) and projection, and the client's query is
answered from ReadWorker's read model through the remote QueryBus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import free_port, require_tcp
from servers.pulsar_lite import PulsarLite

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "rabbitmq": ("RabbitMQ", 5672, "rabbitmq-server -detached"),
    "redis": ("Redis", 6379, "redis-server --port 6379 --save ''"),
    "nats": ("NATS", 4222, "nats-server -js -p 4222"),
}


@pytest.fixture(scope="module")
def pulsar_url() -> Iterator[str]:
    with PulsarLite() as broker:
        yield broker.url


def broker_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    per_bus = {
        "rabbitmq": {"EXCHANGE_NAME": f"orders.{run}"},
        "redis": {"KEY_PREFIX": f"orders:{run}:"},
        "nats": {"STREAM_NAME": f"ORDERS_{run}", "SUBJECT_PREFIX": f"orders{run}"},
        "pulsar": {"SERVICE_URL": request.getfixturevalue("pulsar_url") if backend == "pulsar" else ""},
        "kafka": {
            "URL": request.getfixturevalue("kafka_url") if backend == "kafka" else "",
            "TOPIC_PREFIX": f"o{run}.",
        },
    }[backend]
    if backend in BROKERS:
        name, port, start = BROKERS[backend]
        require_tcp(name, "127.0.0.1", port, start)
    env = {"EVENT__BACKEND": backend, "COMMAND__BACKEND": backend, "EVENT__RETRY_DELAYS": "[0.1, 0.2]"}
    for section in ("EVENT", "COMMAND"):
        env.update({f"{section}__{key}": value for key, value in per_bus.items()})
    return env


def _env(settings: dict[str, str], service: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE"))}
    env.update(settings, SERVICE__NAME=service, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    return env


def _worker(target: str, settings: dict[str, str], service: str, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bento.cli", "run", f"bento.examples.orders.service:{target}", *extra],
        cwd=ROOT,
        env=_env(settings, service),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if " ready: " in line:
            return process
    raise AssertionError(f"{target} did not start ({process.wait()}): {''.join(seen)}")


@pytest.mark.parametrize("backend", [*BROKERS, "pulsar"])
def test_three_processes_on_one_broker(backend: str, request: pytest.FixtureRequest) -> None:
    settings = broker_settings(backend, request)
    workers = []
    ports = {"CommandWorker": free_port(), "ReadWorker": free_port()}
    try:
        for target, service in (("CommandWorker", "orders-commands"), ("ReadWorker", "orders-read")):
            workers.append(_worker(target, settings, service, "--http", f"127.0.0.1:{ports[target]}"))
        client = subprocess.run(
            [sys.executable, "-m", "bento.examples.orders.client", "60"],
            cwd=ROOT,
            env=_env(settings, "orders-client"),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        result = json.loads(client.stdout.splitlines()[-1])
        assert result["restocked"] == 10 and result["placed"].startswith("o-")
        assert "is paid; only placed orders can be paid" in result["refused"]
        summary = result["summary"]
        assert (summary["status"], summary["stock_reserved"], summary["amount"]) == ("paid", True, 13.5)
        # The operator's view of the same workload, scraped from each worker's /metrics.
        handled = _handled(ports["CommandWorker"], backend)
        assert handled == {
            "inventory.restock": 1,
            "orders.place_order": 1,
            "orders.pay_order": 2,  # the second is refused with a DomainError, still handled once
            "inventory.reserve_stock": 1,  # dispatched by ReadWorker's subscriber
        }
        assert _handled(ports["ReadWorker"], backend).get("orders.get_order", 0) >= 1
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
    assert codes == [0, 0]


def _handled(port: int, backend: str) -> dict[str, int]:
    """Messages each consumer group of a worker consumed, by destination, from its /metrics;
    every sample must name the broker as `messaging_system`."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "messaging_client_consumed_messages_total":
                assert sample.labels["messaging_system"] == backend, sample
                name = sample.labels["messaging_destination_name"]
                counts[name] = counts.get(name, 0) + int(sample.value)
    return counts
