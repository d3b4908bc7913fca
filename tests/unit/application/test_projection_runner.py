"""Projections and their runner on the in-memory adapters."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from pydantic import BaseModel

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.memory.read_model import InMemoryReadModel
from bento.application.ports.event_store import StoredEvent
from bento.application.ports.read_model import ReadModelPort
from bento.application.projections import Projection, ProjectionError, ProjectionRunner, handles
from bento.application.serialization import EncodedEvent, JsonCodec
from bento.domain.events import DomainEvent


class TicketOpened(DomainEvent, name="test.proj.ticket_opened"):
    ticket: str
    title: str


class TicketCommented(DomainEvent, name="test.proj.ticket_commented"):
    ticket: str


class TicketClosed(DomainEvent, name="test.proj.ticket_closed"):
    ticket: str


class Unrelated(DomainEvent, name="test.proj.unrelated"):
    pass


class TicketRow(BaseModel):
    id: str
    title: str
    comments: int = 0
    open: bool = True
    last_position: int = 0


class Tickets(Projection, name="tickets"):
    def __init__(self, rows: ReadModelPort[TicketRow]) -> None:
        self.rows = self.use(rows)
        self.failing_ticket: str | None = None

    @handles(TicketOpened)
    async def opened(self, event: TicketOpened, stored: StoredEvent) -> None:
        await self.rows.upsert(
            TicketRow(id=event.ticket, title=event.title, last_position=stored.position), version=stored.position
        )

    async def on_TicketCommented(self, event: TicketCommented, stored: StoredEvent) -> None:
        row = await self.rows.get(event.ticket)
        if row is None or stored.position <= row.last_position:
            return  # already applied (a replay after a crash)
        if event.ticket == self.failing_ticket:
            raise RuntimeError("boom")
        changed = row.model_copy(update={"comments": row.comments + 1, "last_position": stored.position})
        await self.rows.upsert(changed, version=stored.position)

    def on_TicketClosed(self, event: TicketClosed) -> None:  # sync, one argument: both allowed
        self.closed_seen = event.ticket


async def fill(store: InMemoryEventStore, tickets: int = 20, comments: int = 5) -> None:
    for n in range(tickets):
        await store.append(f"t-{n}", [TicketOpened(ticket=f"t-{n}", title=f"#{n}")], 0)
        await store.append("noise", [Unrelated()], -1)
    for c in range(comments):
        for n in range(tickets):
            await store.append(f"t-{n}", [TicketCommented(ticket=f"t-{n}")], 1 + c)


async def snapshot(rows: ReadModelPort[TicketRow]) -> list[TicketRow]:
    return await rows.find(order_by="id")


def test_handler_table_by_decorator_and_by_name() -> None:
    assert Tickets.name == "tickets"
    assert Tickets.handler_table().keys() == {
        "test.proj.ticket_opened",
        "test.proj.ticket_commented",
        "test.proj.ticket_closed",
    }


async def test_catch_up_applies_in_order_and_checkpoints() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    await fill(store)
    rows = InMemoryReadModel(TicketRow)
    runner = ProjectionRunner(Tickets(rows), store, checkpoints, batch_size=7)
    assert await runner.run_until_caught_up() == 140
    assert await checkpoints.load("tickets") == 140
    assert await rows.count() == 20 and all(r.comments == 5 for r in await rows.find())
    status = await runner.status()
    assert (status.position, status.head, status.lag) == (140, 140, 0)
    await store.append("t-0", [TicketCommented(ticket="t-0"), TicketClosed(ticket="t-0")], 6)
    assert await runner.run_until_caught_up() == 2
    got = await rows.get("t-0")
    assert got is not None and got.comments == 6


async def test_resume_after_restart_and_rebuild_give_identical_read_models() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    await fill(store, comments=2)
    rows = InMemoryReadModel(TicketRow)
    await ProjectionRunner(Tickets(rows), store, checkpoints, batch_size=10).run_until_caught_up()
    await fill_more(store)
    # "restart": a new projection object and runner over the same read model and checkpoints
    restarted = ProjectionRunner(Tickets(rows), store, checkpoints, batch_size=10)
    assert await restarted.run_until_caught_up() == 20
    incremental = await snapshot(rows)
    assert await restarted.rebuild() == await store.last_position()
    assert await snapshot(rows) == incremental


async def fill_more(store: InMemoryEventStore) -> None:
    for n in range(20):
        await store.append(f"t-{n}", [TicketCommented(ticket=f"t-{n}")], 3)


async def test_a_failing_handler_stops_before_the_event_and_the_replay_is_idempotent() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    await fill(store, tickets=4, comments=3)
    rows = InMemoryReadModel(TicketRow)
    projection = Tickets(rows)
    projection.failing_ticket = "t-2"
    runner = ProjectionRunner(projection, store, checkpoints, batch_size=5)
    with pytest.raises(ProjectionError) as caught:
        await runner.run_until_caught_up()
    assert caught.value.projection == "tickets" and caught.value.event_type == "test.proj.ticket_commented"
    assert await checkpoints.load("tickets") < caught.value.position
    # Simulate the other crash window: writes flushed but checkpoint not saved.
    await checkpoints.save("tickets", 0)
    projection.failing_ticket = None
    await runner.run_until_caught_up()
    assert [r.comments for r in await snapshot(rows)] == [3, 3, 3, 3]


async def test_run_polls_until_stopped() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    rows = InMemoryReadModel(TicketRow)
    runner = ProjectionRunner(Tickets(rows), store, checkpoints, poll_interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    await store.append("t-x", [TicketOpened(ticket="t-x", title="late")], 0)
    for _ in range(200):
        if await rows.get("t-x") is not None:
            break
        await asyncio.sleep(0.01)
    assert await rows.get("t-x") is not None
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_events_of_unhandled_types_are_not_decoded() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    await store.append("s", [Unrelated()], 0)
    # An event type no class claims any more would fail to decode; it is skipped unread.
    stored = (await store.read_all())[0]
    assert stored.event_type not in Tickets(InMemoryReadModel(TicketRow)).handled_types()
    runner = ProjectionRunner(Tickets(InMemoryReadModel(TicketRow)), store, checkpoints)
    assert await runner.run_until_caught_up() == 1


async def test_an_event_that_does_not_decode_stops_the_batch_at_its_own_position() -> None:
    """Batches are decoded in one pass; a bad event still names its own position."""

    class DropsTitles(JsonCodec):
        def encode_for_store(self, event: DomainEvent, *, aggregate_type: str = "") -> EncodedEvent:
            encoded = super().encode_for_store(event, aggregate_type=aggregate_type)
            if isinstance(event, TicketOpened) and event.ticket == "t-2":
                return dataclasses.replace(encoded, data=json.dumps({"ticket": "t-2"}))  # no title
            return encoded

    store, checkpoints = InMemoryEventStore(codec=DropsTitles()), InMemoryCheckpointStore()
    await fill(store, tickets=4, comments=1)
    bad = next(s for s in await store.read_all(0, 100) if s.stream == "t-2" and s.version == 1)
    runner = ProjectionRunner(Tickets(InMemoryReadModel(TicketRow)), store, checkpoints, batch_size=100)
    with pytest.raises(ProjectionError) as caught:
        await runner.run_until_caught_up()
    assert (caught.value.position, caught.value.event_type) == (bad.position, "test.proj.ticket_opened")
    assert "title" in caught.value.reason
    assert await checkpoints.load("tickets") == 0


async def test_checkpoints_overlap_the_next_batch_but_land_in_order_after_their_commit() -> None:
    """A batch's checkpoint is saved while the next batch is applied: never before its
    own commit, always in order, and the last one has landed when the catch-up returns."""
    log: list[tuple[str, int]] = []

    class SlowCheckpoints(InMemoryCheckpointStore):
        async def save(self, name: str, position: int) -> None:
            log.append(("save starts", position))
            await asyncio.sleep(0.01)
            await super().save(name, position)
            log.append(("saved", position))

    class Logged(Tickets):
        async def commit(self) -> None:
            await super().commit()
            log.append(("committed", self.last_seen))

        async def apply(self, event: DomainEvent, stored: StoredEvent) -> None:
            self.last_seen = stored.position
            await super().apply(event, stored)

    store, checkpoints = InMemoryEventStore(), SlowCheckpoints()
    await fill(store, tickets=10, comments=2)
    runner = ProjectionRunner(Logged(InMemoryReadModel(TicketRow)), store, checkpoints, batch_size=7)
    await runner.run_until_caught_up()
    head = await store.last_position()
    assert await checkpoints.load(runner.name) == head
    saves = [p for kind, p in log if kind == "saved"]
    assert saves == sorted(saves) and saves[-1] == head
    for kind, position in log:
        if kind == "save starts":
            committed = [p for k, p in log[: log.index((kind, position))] if k == "committed"]
            assert committed and committed[-1] >= position - 7  # its own batch was committed first
    # The next batch was applied (and committed) while an earlier checkpoint was still being saved.
    overlapped = any(log[n][0] == "save starts" and log[n + 1][0] == "committed" for n in range(len(log) - 1))
    assert overlapped, log
