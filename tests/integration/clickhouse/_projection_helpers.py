"""Shared by the projection and outbox tests, and run as a child process by them.

    python _projection_helpers.py project HOST PORT DB EVENTS_TABLE ROWS_TABLE NAME CRASH_AFTER_COMMITS
    python _projection_helpers.py append-and-die HOST PORT DB EVENTS_TABLE RELAY_NAME

The child exits with os._exit, i.e. without any cleanup, like a killed process.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine, open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.application.outbox import OutboxRelay
from bento.application.ports.event_store import StoredEvent
from bento.application.ports.read_model import ReadModelPort
from bento.application.projections import Projection, ProjectionRunner, handles
from bento.testing.events import ContractEvent, OtherContractEvent, make_event

CRASH_EXIT_CODE = 17


class StreamSummary(BaseModel):
    id: str
    events: int = 0
    seq_total: int = 0
    notes: int = 0
    last_position: int = 0


class Summaries(Projection, name="stream-summaries"):
    """Accumulates per stream; idempotent through `last_position` (see Projection docs)."""

    def __init__(self, rows: ReadModelPort[StreamSummary]) -> None:
        self.rows = self.use(rows)

    async def _bump(self, stored: StoredEvent, **changes: int) -> None:
        row = await self.rows.get(stored.stream) or StreamSummary(id=stored.stream)
        if stored.position <= row.last_position:
            return
        update = {k: getattr(row, k) + v for k, v in changes.items()}
        update |= {"events": row.events + 1, "last_position": stored.position}
        await self.rows.upsert(row.model_copy(update=update), version=stored.position)

    @handles(ContractEvent)
    async def counted(self, event: ContractEvent, stored: StoredEvent) -> None:
        await self._bump(stored, seq_total=event.seq)

    async def on_OtherContractEvent(self, event: OtherContractEvent, stored: StoredEvent) -> None:
        await self._bump(stored, notes=1)


class CrashingSummaries(Summaries):
    """Dies right after its Nth read-model flush, before the runner saves the checkpoint."""

    def __init__(self, rows: ReadModelPort[StreamSummary], crash_after: int) -> None:
        super().__init__(rows)
        self.crash_after, self.commits = crash_after, 0

    async def commit(self) -> None:
        await super().commit()
        self.commits += 1
        if self.commits == self.crash_after:
            os._exit(CRASH_EXIT_CODE)


async def fill(store: ClickHouseEventStore, streams: int, per_stream: int) -> None:
    """`streams` streams; events interleaved across streams, a note every 5th event."""
    for round_ in range(per_stream):
        appends = []
        for s in range(streams):
            event = make_event(round_, key=f"s{s}") if round_ % 5 else OtherContractEvent(note=f"{s}/{round_}")
            appends.append(store.append(f"s{s}", [event], round_))
        await asyncio.gather(*appends)


def _settings(host: str, port: str, db: str) -> ClickHouseSettings:
    return ClickHouseSettings(mode="server", host=host, port=int(port), database=db)


async def _project(engine: ClickHouseEngine, events: str, rows: str, name: str, crash_after: int) -> None:
    async with (
        ClickHouseEventStore(engine, single_writer=True, table=events) as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table=rows) as model,
    ):
        runner = ProjectionRunner(CrashingSummaries(model, crash_after), store, checkpoints, batch_size=50, name=name)
        await runner.run_until_caught_up()


async def _append_and_die(engine: ClickHouseEngine, events: str, relay_name: str) -> None:
    store = ClickHouseEventStore(engine, single_writer=True, table=events)
    await store.start()
    checkpoints = ClickHouseCheckpointStore(engine)
    await checkpoints.start()
    async with InProcessMessageBus(InProcessSettings()) as bus:
        relay = OutboxRelay(store, bus, checkpoints, name=relay_name)
        await store.append("order-1", [make_event(n, key="order-1") for n in range(3)], 0)
        await relay.run_until_caught_up()  # published (to nobody) and checkpointed
        last = make_event(99, key="order-1")
        await store.append("order-1", [last], 3)
        print(last.message_id, flush=True)
        os._exit(0)  # died after the append, before any relay published it


def main(argv: list[str]) -> None:
    command, host, port, db, *rest = argv

    async def run() -> None:
        async with open_engine(_settings(host, port, db)) as engine:
            if command == "project":
                events, rows, name, crash_after = rest
                await _project(engine, events, rows, name, int(crash_after))
            elif command == "append-and-die":
                events, relay_name = rest
                await _append_and_die(engine, events, relay_name)
            else:
                raise SystemExit(f"unknown command {command!r}")

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])


def summaries_container() -> type:
    """A service container with the Summaries projection (for the CLI test), built on
    demand so that importing this module builds nothing."""
    from dependency_injector import providers

    from bento.infrastructure.container import BentoContainer
    from bento.infrastructure.read_models import read_model

    class SummariesContainer(BentoContainer):
        rows = providers.Resource(read_model, BentoContainer.read_models, StreamSummary)
        summaries = providers.Singleton(Summaries, rows)

    return SummariesContainer
