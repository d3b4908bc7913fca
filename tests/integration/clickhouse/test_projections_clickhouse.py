"""Projections into ClickHouse read models: resume after a real crash, and rebuild."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from _projection_helpers import CRASH_EXIT_CODE, StreamSummary, Summaries, fill

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.application.projections import ProjectionRunner
from bento.testing.events import make_event

HELPER = Path(__file__).with_name("_projection_helpers.py")


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(params=["embedded", "server"])
def engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    found: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return found


async def test_resume_and_rebuild_give_identical_read_models(engine: ClickHouseEngine) -> None:
    suffix = _suffix()
    async with (
        ClickHouseEventStore(engine, single_writer=True, table=f"ev_{suffix}") as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table=f"rm_{suffix}") as rows,
    ):
        await fill(store, streams=8, per_stream=15)
        name = f"summaries-{suffix}"
        runner = ProjectionRunner(Summaries(rows), store, checkpoints, batch_size=25, name=name)
        assert await runner.run_until_caught_up() == 120

        await fill_more(store)
        restarted = ProjectionRunner(Summaries(rows), store, checkpoints, batch_size=25, name=name)
        assert await restarted.run_until_caught_up() == 8
        incremental = await rows.find(order_by="id")
        assert len(incremental) == 8 and all(r.events == 16 for r in incremental)

        assert await restarted.rebuild() == 128
        assert await rows.find(order_by="id") == incremental
        assert await checkpoints.load(name) == await store.last_position()
        status = await restarted.status()
        assert status.lag == 0


async def fill_more(store: ClickHouseEventStore) -> None:
    await asyncio.gather(*(store.append(f"s{s}", [make_event(100, key=f"s{s}")], 15) for s in range(8)))


async def test_a_projection_killed_between_flush_and_checkpoint_resumes_to_the_same_model(
    server_engine: ClickHouseEngine, clickhouse_server_settings: ClickHouseSettings
) -> None:
    suffix = _suffix()
    events, crashed_rows, clean_rows, name = f"ev_{suffix}", f"crash_{suffix}", f"clean_{suffix}", f"p-{suffix}"
    async with ClickHouseEventStore(server_engine, single_writer=True, table=events) as store:
        await fill(store, streams=10, per_stream=20)  # 200 events, 4 batches of 50
    settings = clickhouse_server_settings
    child = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(HELPER),
            "project",
            settings.host,
            str(settings.port),
            settings.database,
            events,
            crashed_rows,
            name,
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == CRASH_EXIT_CODE, child.stderr

    async with (
        ClickHouseEventStore(server_engine, single_writer=True, table=events) as store,
        ClickHouseCheckpointStore(server_engine) as checkpoints,
        ClickHouseReadModel(server_engine, StreamSummary, table=crashed_rows) as crashed,
        ClickHouseReadModel(server_engine, StreamSummary, table=clean_rows) as clean,
    ):
        # The third batch reached the read model but not the checkpoint.
        assert await checkpoints.load(name) == 100
        assert max(r.last_position for r in await crashed.find()) == 150
        resumed = ProjectionRunner(Summaries(crashed), store, checkpoints, batch_size=50, name=name)
        assert await resumed.run_until_caught_up() == 100  # replays 101..200, 101..150 a second time
        uninterrupted = ProjectionRunner(Summaries(clean), store, checkpoints, name=f"{name}-clean")
        await uninterrupted.run_until_caught_up()
        expected = await clean.find(order_by="id")
        assert [r.events for r in expected] == [20] * 10
        assert await crashed.find(order_by="id") == expected
