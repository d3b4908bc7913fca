"""`bento projections status|rebuild` against a private ClickHouse server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from _projection_helpers import StreamSummary, fill

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.cli import main

CONTAINER = "_projection_helpers:summaries_container"


@pytest.fixture
def cli_settings(clickhouse_server_settings: ClickHouseSettings, monkeypatch: pytest.MonkeyPatch) -> ClickHouseSettings:
    """A database of its own, selected through the environment as a deployment would."""
    settings = clickhouse_server_settings.model_copy(update={"database": f"cli_{uuid.uuid4().hex[:10]}"})
    for name, value in {
        "EVENT_STORE__BACKEND": "clickhouse",
        "READ_MODEL__BACKEND": "clickhouse",
        "CLICKHOUSE__MODE": "server",
        "CLICKHOUSE__HOST": settings.host,
        "CLICKHOUSE__PORT": str(settings.port),
        "CLICKHOUSE__DATABASE": settings.database,
        "BENTO_CONTAINER": CONTAINER,
        "STREAM_LOCK__BACKEND": "single-writer",
    }.items():
        monkeypatch.setenv(name, value)
    return settings


async def _seed(settings: ClickHouseSettings) -> None:
    async with open_engine(settings) as engine, ClickHouseEventStore(engine, single_writer=True) as store:
        await fill(store, streams=3, per_stream=4)


async def _rows(settings: ClickHouseSettings) -> list[StreamSummary]:
    async with open_engine(settings) as engine, ClickHouseReadModel(engine, StreamSummary) as rows:
        return await rows.find(order_by="id")


def test_a_bad_container_path_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["projections", "status", "--container", "_projection_helpers:StreamSummary"]) == 1
    assert "is not a dependency-injector container" in capsys.readouterr().err
    assert main(["projections", "status", "--container", "no_such_module:X"]) == 1
    assert "cannot import the container" in capsys.readouterr().err


def test_rebuild_fills_the_read_model_and_status_shows_no_lag(
    cli_settings: ClickHouseSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(cli_settings))
    assert main(["projections", "status"]) == 0
    before = capsys.readouterr().out
    assert "stream-summaries" in before and "12" in before  # lag 12 before the first run

    assert main(["projections", "rebuild", "stream-summaries"]) == 0
    assert "replayed 12 events" in capsys.readouterr().out
    rows = asyncio.run(_rows(cli_settings))
    assert [(r.id, r.events) for r in rows] == [("s0", 4), ("s1", 4), ("s2", 4)]

    assert main(["projections", "status"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("stream-summaries"))
    assert line.split()[1:4] == ["12", "12", "0"]

    assert main(["projections", "rebuild", "missing"]) == 1
    assert "no projection named 'missing'" in capsys.readouterr().err


async def _save_checkpoint(settings: ClickHouseSettings, name: str, position: int) -> None:
    async with open_engine(settings) as engine, ClickHouseCheckpointStore(engine) as checkpoints:
        await checkpoints.save(name, position)


def test_status_shows_an_interrupted_rebuild_and_hides_a_finished_one(
    cli_settings: ClickHouseSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(cli_settings))
    asyncio.run(_save_checkpoint(cli_settings, "stream-summaries@rebuild", 5))
    assert main(["projections", "status"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("stream-summaries@rebuild"))
    assert line.split()[1:] == ["5", "12", "7", "rebuild"]

    for name in ("stream-summaries@rebuild", "stream-summaries@pause", "stream-summaries@paused"):
        asyncio.run(_save_checkpoint(cli_settings, name, 0))  # what a switch leaves
    assert main(["projections", "status"]) == 0
    assert "@" not in capsys.readouterr().out
