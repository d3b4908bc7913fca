"""The outbox relay publishes what a killed process appended but never published."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.application.outbox import OutboxRelay
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent

HELPER = Path(__file__).with_name("_projection_helpers.py")


async def test_an_event_appended_by_a_killed_process_is_published_after_restart(
    server_engine: ClickHouseEngine, clickhouse_server_settings: ClickHouseSettings
) -> None:
    suffix = uuid.uuid4().hex[:10]
    events, relay_name = f"ev_{suffix}", f"outbox-{suffix}"
    settings = clickhouse_server_settings
    child = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(HELPER),
            "append-and-die",
            settings.host,
            str(settings.port),
            settings.database,
            events,
            relay_name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    crashed_id = child.stdout.strip()

    received: list[DomainEvent] = []
    arrived = asyncio.Event()

    async def handler(event: DomainEvent) -> None:
        received.append(event)
        arrived.set()

    async with (
        ClickHouseEventStore(server_engine, single_writer=True, table=events) as store,
        ClickHouseCheckpointStore(server_engine) as checkpoints,
        InProcessMessageBus(InProcessSettings()) as bus,
    ):
        assert await checkpoints.load(relay_name) == 3  # the child relayed the first three
        await bus.subscribe(ContractEvent.__wire_name__, handler, group="audit")
        relay = OutboxRelay(store, bus, checkpoints, name=relay_name)
        assert await relay.run_until_caught_up() == 1  # only the unpublished tail
        await asyncio.wait_for(arrived.wait(), 5)
        assert [e.message_id for e in received] == [crashed_id]
        assert isinstance(received[0], ContractEvent) and received[0].seq == 99
        assert received[0].metadata.aggregate_id == "order-1"
        assert await checkpoints.load(relay_name) == 4
        assert await relay.run_until_caught_up() == 0  # a second restart publishes nothing again
