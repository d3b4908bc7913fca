"""Zero-downtime projection rebuilds (bento.application.rebuild) on the in-memory adapters."""

from __future__ import annotations

import asyncio
import io

import pytest
from pydantic import BaseModel

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.memory.read_model import InMemoryReadModel
from bento.application.ports.event_store import StoredEvent
from bento.application.ports.read_model import ReadModelPort
from bento.application.projection_switch import ACK_SUFFIX, PAUSE_SUFFIX, LiveRunnerBusyError, now_ms
from bento.application.projections import Projection, ProjectionRunner
from bento.application.read_model_buffer import ReadModelBuffer
from bento.application.rebuild import (
    ProjectionRebuild,
    RebuildNotSupportedError,
    RebuildProgress,
    rebuild_checkpoint,
)
from bento.cli.projections import ProgressPrinter
from bento.domain.events import DomainEvent

TICKETS, COMMENTS = 30, 6
QUIET = 0.05  # no live runner in these tests: switch after 50 ms without one


class RbTicketOpened(DomainEvent, name="test.rebuild.ticket_opened"):
    ticket: str


class RbTicketCommented(DomainEvent, name="test.rebuild.ticket_commented"):
    ticket: str


class Row(BaseModel):
    id: str
    label: str
    comments: int = 0
    last_position: int = 0


class Tickets(Projection, name="rb-tickets"):
    """Accumulates comments; idempotent through last_position (as Projection asks)."""

    label = "v1"

    def __init__(self, rows: ReadModelPort[Row]) -> None:
        self.rows = self.use(rows)
        self.applied = 0

    async def on_RbTicketOpened(self, event: RbTicketOpened, stored: StoredEvent) -> None:
        self.applied += 1
        await self.rows.upsert(
            Row(id=event.ticket, label=self.label, last_position=stored.position), version=stored.position
        )

    async def on_RbTicketCommented(self, event: RbTicketCommented, stored: StoredEvent) -> None:
        self.applied += 1
        row = await self.rows.get(event.ticket)
        if row is None or stored.position <= row.last_position:
            return
        update = {"comments": row.comments + 1, "last_position": stored.position, "label": self.label}
        await self.rows.upsert(row.model_copy(update=update), version=stored.position)


class TicketsV2(Tickets, name="rb-tickets"):
    """The new version of the projection: same name, a visible difference in every row."""

    label = "v2"


async def fill(store: InMemoryEventStore, tickets: int = TICKETS, comments: int = COMMENTS) -> None:
    for n in range(tickets):
        await store.append(f"t-{n}", [RbTicketOpened(ticket=f"t-{n}")], 0)
    for c in range(comments):
        for n in range(tickets):
            await store.append(f"t-{n}", [RbTicketCommented(ticket=f"t-{n}")], 1 + c)


async def served(rows: ReadModelPort[Row]) -> tuple[int, frozenset[str], frozenset[int]]:
    found = await rows.find()
    return len(found), frozenset(r.label for r in found), frozenset(r.comments for r in found)


@pytest.fixture
async def built() -> tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]]:
    """An event store, and a read model the live v1 projection has caught up."""
    store, checkpoints, rows = InMemoryEventStore(), InMemoryCheckpointStore(), InMemoryReadModel(Row)
    await fill(store)
    await ProjectionRunner(Tickets(rows), store, checkpoints).run_until_caught_up()
    assert await served(rows) == (TICKETS, frozenset({"v1"}), frozenset({COMMENTS}))
    return store, checkpoints, rows


OLD = (TICKETS, frozenset({"v1"}), frozenset({COMMENTS}))
NEW = (TICKETS, frozenset({"v2"}), frozenset({COMMENTS}))


async def test_a_reader_in_a_loop_sees_the_old_version_then_the_new_one_never_a_partial_one(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    seen: list[tuple[int, frozenset[str], frozenset[int]]] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            seen.append(await served(rows))
            await asyncio.sleep(0)

    await checkpoints.save("rb-tickets", 5)  # a live runner far behind: the switch moves it
    reading = asyncio.create_task(reader())
    result = await ProjectionRebuild(TicketsV2(rows), store, checkpoints, batch_size=7, switch_quiet=QUIET).run()
    await asyncio.sleep(0.01)
    done.set()
    await reading

    assert result.switched and result.events == TICKETS * (1 + COMMENTS)
    assert set(seen) == {OLD, NEW}, set(seen)  # both versions served, nothing in between
    first_new = seen.index(NEW)
    assert first_new > 10 and all(s == OLD for s in seen[:first_new]) and all(s == NEW for s in seen[first_new:])
    head = await store.last_position()
    assert await checkpoints.load("rb-tickets") == head  # the live runner continues from the rebuilt checkpoint
    assert await checkpoints.load(rebuild_checkpoint("rb-tickets")) == 0
    assert not await rows.has_shadow()


async def test_a_stopped_rebuild_leaves_the_old_version_serving_and_the_next_one_resumes(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    stop = asyncio.Event()
    first = TicketsV2(rows)

    def stop_midway(progress: RebuildProgress) -> None:
        if progress.done >= 60:
            stop.set()

    result = await ProjectionRebuild(
        first, store, checkpoints, batch_size=10, on_progress=stop_midway, progress_interval=0.0, switch_quiet=QUIET
    ).run(stop=stop)
    assert not result.switched and 60 <= result.position < await store.last_position()
    assert await served(rows) == OLD
    assert await checkpoints.load("rb-tickets") == await store.last_position()  # live checkpoint untouched
    assert await checkpoints.load(rebuild_checkpoint("rb-tickets")) == result.position
    assert isinstance(first.rows, ReadModelBuffer) and first.rows.target is rows  # buffers point back

    second = TicketsV2(rows)
    resumed = await ProjectionRebuild(second, store, checkpoints, batch_size=10, switch_quiet=QUIET).run()
    assert resumed.switched and resumed.resumed_from == result.position
    assert second.applied == await store.last_position() - result.position  # nothing replayed twice
    assert await served(rows) == NEW


async def test_restart_discards_an_interrupted_rebuild(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    await checkpoints.save(rebuild_checkpoint("rb-tickets"), 50)
    (await rows.shadow())._rows.clear()  # whatever it held
    result = await ProjectionRebuild(TicketsV2(rows), store, checkpoints, switch_quiet=QUIET).run(restart=True)
    assert result.resumed_from == 0 and await served(rows) == NEW


async def test_a_resumed_rebuild_whose_shadow_is_gone_starts_over(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    await checkpoints.save(rebuild_checkpoint("rb-tickets"), 50)  # e.g. a memory shadow in another process
    result = await ProjectionRebuild(TicketsV2(rows), store, checkpoints, switch_quiet=QUIET).run()
    assert result.resumed_from == 0 and await served(rows) == NEW


async def test_the_live_runner_may_keep_running_and_appends_during_the_rebuild_land_in_the_new_version(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    stop_live = asyncio.Event()
    live = asyncio.create_task(
        ProjectionRunner(Tickets(rows), store, checkpoints, poll_interval=0.001, batch_size=5).run(stop=stop_live)
    )
    appending = True

    async def append_more() -> None:
        n = 0
        while appending:
            await store.append(f"late-{n}", [RbTicketOpened(ticket=f"late-{n}")], 0)
            n += 1
            await asyncio.sleep(0.001)

    appender = asyncio.create_task(append_more())
    await ProjectionRebuild(TicketsV2(rows), store, checkpoints, batch_size=9).run()
    appending = False
    await appender
    await asyncio.sleep(0.05)  # the live runner catches up on the new version
    stop_live.set()
    await live

    fresh = InMemoryReadModel(Row)
    await ProjectionRunner(TicketsV2(fresh), store, InMemoryCheckpointStore()).run_until_caught_up()
    expected = {r.id: (r.comments, r.last_position) for r in await fresh.find()}
    assert {r.id: (r.comments, r.last_position) for r in await rows.find()} == expected
    assert len(expected) > TICKETS  # some late tickets were appended during the rebuild


async def test_progress_is_reported_per_phase_and_printed_as_plain_lines_off_a_terminal(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    reports: list[RebuildProgress] = []
    out = io.StringIO()
    printer = ProgressPrinter(out)

    def both(progress: RebuildProgress) -> None:
        reports.append(progress)
        printer(progress)

    await ProjectionRebuild(
        TicketsV2(rows), store, checkpoints, batch_size=10, on_progress=both, progress_interval=0.0, switch_quiet=QUIET
    ).run()
    phases = [r.phase for r in reports]
    assert phases[0] == "starting" and phases[-3:] == ["pausing", "switching", "done"]
    assert set(phases[1:-3]) == {"replaying"}
    total = TICKETS * (1 + COMMENTS)
    middle = [r for r in reports if r.phase == "replaying" and 0 < r.done < total]
    assert middle and all(r.total == total and r.rate > 0 and r.eta is not None for r in middle)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == len(reports)
    assert any(f"/{total} events (" in line and "events/s, ETA " in line for line in lines)
    assert lines[0] == f"rebuild rb-tickets: building a new version beside the serving one ({total} events)"
    assert lines[-1].startswith(f"rebuild rb-tickets: done, {total} events in ")


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    printer = ProgressPrinter(out)
    for done in (10, 20):
        printer(RebuildProgress("p", "replaying", done, 100, done, 100, 5.0, 2.0))
    printer(RebuildProgress("p", "switching", 100, 100, 100, 100, 5.0, 20.0))
    text = out.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 2
    assert "10/100 events (10.0%), 5 events/s, ETA 0:18" in text


class NoReadModel(Projection, name="rb-nothing"):
    pass


class Plain:
    """A read model that cannot hold a second version (no shadow methods)."""

    async def get(self, id: str) -> None:
        return None


def test_projections_without_rebuildable_read_models_are_refused_with_the_alternative() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    with pytest.raises(RebuildNotSupportedError, match="in place"):
        ProjectionRebuild(NoReadModel(), store, checkpoints)
    with pytest.raises(RebuildNotSupportedError, match="Plain"):
        ProjectionRebuild(Tickets(Plain()), store, checkpoints)  # type: ignore[arg-type]


async def test_a_runner_that_never_pauses_makes_the_switch_fail_loudly_and_the_rebuild_stays_resumable(
    built: tuple[InMemoryEventStore, InMemoryCheckpointStore, InMemoryReadModel[Row]],
) -> None:
    store, checkpoints, rows = built
    moving = True

    async def unaware_runner() -> None:  # e.g. a service on a Bento without the pause request
        position = await checkpoints.load("rb-tickets")
        while moving:
            position += 1
            await checkpoints.save("rb-tickets", position)
            await asyncio.sleep(0.005)

    other = asyncio.create_task(unaware_runner())
    rebuild = ProjectionRebuild(TicketsV2(rows), store, checkpoints, batch_size=50, switch_patience=0.3)
    with pytest.raises(LiveRunnerBusyError, match="did not pause for the switch"):
        await rebuild.run()
    moving = False
    await other
    assert await served(rows) == OLD and await rows.has_shadow()
    assert await checkpoints.load("rb-tickets" + PAUSE_SUFFIX) == 0  # the request is withdrawn
    assert await checkpoints.load(rebuild_checkpoint("rb-tickets")) == TICKETS * (1 + COMMENTS)


async def test_a_pause_request_holds_a_runner_only_until_its_lease_ends() -> None:
    store, checkpoints, rows = InMemoryEventStore(), InMemoryCheckpointStore(), InMemoryReadModel(Row)
    await fill(store, tickets=3, comments=1)
    await checkpoints.save("rb-tickets" + PAUSE_SUFFIX, now_ms() + 300)  # left by a rebuild that died
    stop = asyncio.Event()
    runner = asyncio.create_task(ProjectionRunner(Tickets(rows), store, checkpoints, poll_interval=0.01).run(stop=stop))
    await asyncio.sleep(0.15)
    assert await rows.count() == 0  # standing still, and saying so
    assert await checkpoints.load("rb-tickets" + ACK_SUFFIX) > now_ms()
    await asyncio.sleep(0.4)
    assert await rows.count() == 3  # the lease ended: going on
    stop.set()
    await runner
