"""One correlation id along command → events → subscriber → command across three OS processes on
RabbitMQ, configured by environment only: process A dispatches `Place`; B handles it and
publishes `Placed`; C's subscriber dispatches `Ship`, which B handles and publishes `Shipped`; C
records what it saw. Every message carries A's command id as correlation id, each one's causation
id is the id of the message that caused it, and the tenant set in A arrives unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from bento.adapters.rabbitmq import RabbitMQSettings
from bento.examples.orders.cleanup import cleanup_broker

ROOT = Path(__file__).resolve().parents[3]

CHAIN = """
import json
import os

from dependency_injector import providers

from bento import Command, CommandHandler, DomainEvent, EventBus, EventHandler
from bento.application.buses import CommandBus
from bento.infrastructure.container import BentoContainer


class Place(Command, name="{wire}.place"):
    order: str


class Ship(Command, name="{wire}.ship"):
    order: str


class Placed(DomainEvent, name="{wire}.placed"):
    order: str


class Shipped(DomainEvent, name="{wire}.shipped"):
    order: str


def record(kind, message):
    meta = message.metadata
    line = dict(
        kind=kind,
        message_id=message.message_id,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        tenant_id=meta.tenant_id,
        pid=os.getpid(),
    )
    with open(os.environ["CHAIN_RECORD"], "a") as out:
        out.write(json.dumps(line) + "\\n")


class PlaceHandler(CommandHandler[Place, str]):
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def handle(self, command: Place) -> str:
        record("place handled", command)
        await self.events.publish(Placed(order=command.order))
        return command.order


class ShipHandler(CommandHandler[Ship, str]):
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def handle(self, command: Ship) -> str:
        record("ship handled", command)
        await self.events.publish(Shipped(order=command.order))
        return command.order


class ShipWhenPlaced(EventHandler[Placed]):
    def __init__(self, commands: CommandBus) -> None:
        self.commands = commands

    async def handle(self, event: Placed) -> None:
        record("placed", event)
        ship = Ship(order=event.order)
        record("ship sent", ship)
        await self.commands.dispatch(ship)


class RecordShipped(EventHandler[Shipped]):
    async def handle(self, event: Shipped) -> None:
        record("shipped", event)


class Handlers(BentoContainer):
    place = providers.Singleton(PlaceHandler, BentoContainer.event_bus)
    ship = providers.Singleton(ShipHandler, BentoContainer.event_bus)


class Reactors(BentoContainer):
    ship_when_placed = providers.Singleton(ShipWhenPlaced, BentoContainer.command_bus)
    record_shipped = providers.Singleton(RecordShipped)
"""

CLIENT = """
import asyncio
import json

from bento.infrastructure.container import BentoContainer, shutdown
from chain import Place


async def main() -> None:
    container = BentoContainer()
    command = Place(order="o-1").with_metadata(tenant_id="acme")
    result = await container.command_bus().dispatch(command)
    print(json.dumps(dict(message_id=command.message_id, result=result)))
    await shutdown(container)


asyncio.run(main())
"""


def _env(tmp_path: Path, rabbitmq_url: str, service: str, exchange: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE", "INBOX"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        CHAIN_RECORD=str(tmp_path / "record.jsonl"),
        SERVICE__NAME=service,
        EVENT__URL=rabbitmq_url,
        EVENT__EXCHANGE_NAME=exchange,
        COMMAND__URL=rabbitmq_url,
        COMMAND__EXCHANGE_NAME=exchange,
    )
    return env


def _worker(tmp_path: Path, target: str, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bento.cli", "run", target],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if " ready: " in line:
            return process
    raise AssertionError(f"{target} did not start ({process.wait()}): {''.join(seen)}")


def _records(path: Path, kinds: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            found = {(r := json.loads(line))["kind"]: r for line in path.read_text().splitlines()}
            if len(found) >= kinds:
                return found
        time.sleep(0.1)
    raise AssertionError(f"not every step was recorded: {path.read_text() if path.exists() else 'nothing'}")


def test_one_correlation_id_across_three_processes(tmp_path: Path, rabbitmq_url: str) -> None:
    wire = f"chain{uuid.uuid4().hex[:10]}"
    exchange = f"bento.test.{wire}"
    (tmp_path / "chain.py").write_text(textwrap.dedent(CHAIN.format(wire=wire)))
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    workers = []
    try:
        workers.append(_worker(tmp_path, "chain:Handlers", _env(tmp_path, rabbitmq_url, "chain-b", exchange)))
        workers.append(_worker(tmp_path, "chain:Reactors", _env(tmp_path, rabbitmq_url, "chain-c", exchange)))
        client = subprocess.run(
            [sys.executable, "client.py"],
            cwd=tmp_path,
            env=_env(tmp_path, rabbitmq_url, "chain-a", exchange),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        sent = json.loads(client.stdout.splitlines()[-1])
        assert sent["result"] == "o-1"
        steps = _records(tmp_path / "record.jsonl", kinds=5)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
        subscriptions: list[tuple[str, str | None]] = [
            (f"{wire}.place", f"bento.handlers.{wire}.place"),
            (f"{wire}.ship", f"bento.handlers.{wire}.ship"),
            (f"{wire}.placed", "chain-c.ShipWhenPlaced"),
            (f"{wire}.shipped", "chain-c.RecordShipped"),
        ]
        settings = RabbitMQSettings(url=rabbitmq_url, exchange_name=exchange)
        asyncio.run(cleanup_broker(settings, subscriptions))
    assert codes == [0, 0]
    first = sent["message_id"]
    place, placed, ship, ship_handled, shipped = (
        steps[k] for k in ("place handled", "placed", "ship sent", "ship handled", "shipped")
    )
    b, c = workers[0].pid, workers[1].pid
    assert (place["pid"], placed["pid"], ship["pid"], ship_handled["pid"], shipped["pid"]) == (b, c, c, b, c)
    assert place["message_id"] == first
    # One conversation: every message after A's command carries its id as correlation id.
    assert {placed["correlation_id"], ship["correlation_id"], ship_handled["correlation_id"]} == {first}
    assert shipped["correlation_id"] == first
    # Causation chains: each message names the one that caused it.
    assert placed["causation_id"] == first
    assert ship["causation_id"] == placed["message_id"]
    assert ship_handled["message_id"] == ship["message_id"]  # the command crossed unchanged
    assert shipped["causation_id"] == ship["message_id"]
    # The tenant set in A crosses every hop.
    assert {s["tenant_id"] for s in steps.values()} == {"acme"}
