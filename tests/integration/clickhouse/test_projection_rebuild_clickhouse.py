"""Zero-downtime projection rebuilds on chdb and a private ClickHouse server (18.16):
readers in a loop never see an empty or partial read model, and a real
`bento projections rebuild` interrupted with SIGINT leaves the old version serving and
resumes on the next run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import pytest
from _projection_helpers import StreamSummary, Summaries, fill

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine, open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.application.projections import ProjectionRunner
from bento.application.rebuild import ProjectionRebuild, rebuild_checkpoint
from bento.testing.contracts.read_model import ContractRecord
from bento.testing.events import make_event

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LEGACY = StreamSummary(id="legacy-marker")  # only the old version holds this row

Served = tuple[tuple[str, int], ...]


async def _served(rows: ClickHouseReadModel[StreamSummary]) -> Served:
    return tuple((r.id, r.events) for r in await rows.find(order_by="id"))


async def _read_in_a_loop(rows: ClickHouseReadModel[StreamSummary], seen: list[Served], done: asyncio.Event) -> None:
    while not done.is_set():
        seen.append(await _served(rows))
        await asyncio.sleep(0.002)


@pytest.fixture(params=["embedded", "server"])
def engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    found: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return found


async def test_a_reader_in_a_loop_never_sees_an_empty_or_partial_read_model(engine: ClickHouseEngine) -> None:
    suffix = uuid.uuid4().hex[:10]
    name = f"summaries-{suffix}"
    async with (
        ClickHouseEventStore(engine, single_writer=True, table=f"ev_{suffix}") as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table=f"rm_{suffix}") as rows,
    ):
        try:
            await fill(store, streams=8, per_stream=15)
            await ProjectionRunner(Summaries(rows), store, checkpoints, name=name).run_until_caught_up()
            await rows.upsert(LEGACY, version=1)
            new = tuple((f"s{s}", 15) for s in range(8))
            old = tuple(sorted((*new, (LEGACY.id, 0))))
            assert await _served(rows) == old

            seen: list[Served] = []
            done = asyncio.Event()
            reader = asyncio.create_task(_read_in_a_loop(rows, seen, done))
            result = await ProjectionRebuild(
                Summaries(rows), store, checkpoints, batch_size=4, name=name, switch_quiet=0.2
            ).run()
            await asyncio.sleep(0.05)
            done.set()
            await reader

            assert result.switched and result.events == 120
            assert set(seen) == {old, new}, [s for s in seen if s not in (old, new)][:3]
            first_new = seen.index(new)
            assert first_new >= 3 and set(seen[first_new:]) == {new}  # old while building, then new for good
            assert await checkpoints.load(name) == await store.last_position()
            assert not await rows.has_shadow()

            # The live runner continues from the rebuilt checkpoint, on the new version.
            await asyncio.gather(*(store.append(f"s{s}", [make_event(99, key=f"s{s}")], 15) for s in range(8)))
            assert await ProjectionRunner(Summaries(rows), store, checkpoints, name=name).run_until_caught_up() == 8
            assert await _served(rows) == tuple((f"s{s}", 16) for s in range(8))
        finally:
            await rows.drop_shadow()
            for table in (f"ev_{suffix}", f"rm_{suffix}"):
                await engine.execute(f"DROP TABLE IF EXISTS {engine.table(table)}")


async def test_the_live_runner_keeps_running_through_the_rebuild_and_nothing_is_lost(engine: ClickHouseEngine) -> None:
    """Appends and the service's runner go on during the rebuild and across the switch: the
    switched read model equals one built from scratch afterwards."""
    suffix = uuid.uuid4().hex[:10]
    name = f"summaries-{suffix}"
    async with (
        ClickHouseEventStore(engine, single_writer=True, table=f"ev_{suffix}") as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table=f"rm_{suffix}") as rows,
        ClickHouseReadModel(engine, StreamSummary, table=f"fresh_{suffix}") as fresh,
    ):
        try:
            await fill(store, streams=6, per_stream=20)
            live_stop, appending = asyncio.Event(), asyncio.Event()
            live = asyncio.create_task(
                ProjectionRunner(Summaries(rows), store, checkpoints, name=name, poll_interval=0.01).run(stop=live_stop)
            )

            async def append_more() -> None:
                version = 20
                while not appending.is_set():
                    await asyncio.gather(
                        *(store.append(f"s{s}", [make_event(version, key=f"s{s}")], version) for s in range(6))
                    )
                    version += 1
                    await asyncio.sleep(0.05)

            appender = asyncio.create_task(append_more())
            result = await ProjectionRebuild(Summaries(rows), store, checkpoints, batch_size=30, name=name).run()
            appending.set()
            await appender
            head = await store.last_position()
            await asyncio.wait_for(_caught_up(checkpoints, name, head), 30)  # the live runner, on the new version
            live_stop.set()
            await live

            await ProjectionRunner(Summaries(fresh), store, checkpoints, name=f"fresh-{suffix}").run_until_caught_up()
            assert result.switched and head > 120  # events were appended during the rebuild
            assert await rows.find(order_by="id") == await fresh.find(order_by="id")
        finally:
            await rows.drop_shadow()
            for table in (f"ev_{suffix}", f"rm_{suffix}", f"fresh_{suffix}"):
                await engine.execute(f"DROP TABLE IF EXISTS {engine.table(table)}")


async def _caught_up(checkpoints: ClickHouseCheckpointStore, name: str, head: int) -> None:
    position = await checkpoints.load(name)
    while position < head:
        await asyncio.sleep(0.02)
        position = await checkpoints.load(name)


async def test_switches_are_atomic_for_concurrent_readers(engine: ClickHouseEngine) -> None:
    """30 switches under three readers: every read sees one whole version. (Two RENAME
    statements instead of one make about half of the reads fail with "table doesn't exist".)"""
    rows = ClickHouseReadModel(engine, ContractRecord, table=f"sw_{uuid.uuid4().hex[:10]}")
    await rows.start()
    await rows.write_batch([(ContractRecord(id=f"o{n}", customer="v0"), 1) for n in range(40)], ())
    versions: list[frozenset[str]] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            found = await rows.find()
            assert len(found) == 40, len(found)
            versions.append(frozenset(r.customer for r in found))

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    try:
        for version in range(1, 31):
            shadow = await rows.shadow()
            await shadow.write_batch([(ContractRecord(id=f"o{n}", customer=f"v{version}"), 1) for n in range(40)], ())
            await rows.promote_shadow()
    finally:
        stop.set()
        await asyncio.gather(*readers)
        await engine.execute(f"DROP TABLE IF EXISTS {rows.qualified}")
    assert len(versions) > 30 and all(len(v) == 1 for v in versions)
    assert len(set(versions)) > 5  # the readers saw many versions come and go


# -- a real `bento projections rebuild`, interrupted -------------------------------------------------


def _environment(settings: ClickHouseSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE__", "EVENT_STORE__", "READ_MODEL__"))}
    return env | {
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
        "EVENT_STORE__BACKEND": "clickhouse",
        "READ_MODEL__BACKEND": "clickhouse",
        "CLICKHOUSE__MODE": "server",
        "CLICKHOUSE__HOST": settings.host,
        "CLICKHOUSE__PORT": str(settings.port),
        "CLICKHOUSE__DATABASE": settings.database,
        "BENTO_CONTAINER": "_projection_helpers:summaries_container",
        "STREAM_LOCK__BACKEND": "single-writer",
    }


async def _seed(engine: ClickHouseEngine, streams: int, per_stream: int) -> None:
    async with ClickHouseEventStore(engine, single_writer=True) as store:
        for start in range(0, per_stream, 100):
            await asyncio.gather(
                *(
                    store.append(f"s{s}", [make_event(n, key=f"s{s}") for n in range(start, start + 100)], start)
                    for s in range(streams)
                )
            )


async def _rebuild(env: dict[str, str], *, interrupt_after: int | None) -> tuple[int, str, str]:
    """Run the CLI; with `interrupt_after`, SIGINT once a progress line reports that many events."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bento.cli",
        "projections",
        "rebuild",
        "stream-summaries",
        "--batch-size",
        "500",
        "--progress-interval",
        "0.2",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    err: list[str] = []
    async with asyncio.timeout(120):
        while line := (await child.stderr.readline()).decode():
            err.append(line)
            match = re.search(r": ([\d,]+)/[\d,]+ events", line)
            if interrupt_after is not None and match and int(match[1].replace(",", "")) >= interrupt_after:
                child.send_signal(signal.SIGINT)
                interrupt_after = None
        out = (await child.stdout.read()).decode()
        code = await child.wait()
    return code, out, "".join(err)


async def test_sigint_leaves_the_old_version_serving_and_a_second_run_resumes(
    clickhouse_server_settings: ClickHouseSettings,
) -> None:
    settings = clickhouse_server_settings.model_copy(update={"database": f"rb_{uuid.uuid4().hex[:10]}"})
    streams, per_stream = 10, 2_000
    total = streams * per_stream
    seen: list[Served] = []
    done = asyncio.Event()
    async with (
        open_engine(settings) as engine,
        ClickHouseReadModel(engine, StreamSummary, table="stream_summary") as rows,
        ClickHouseCheckpointStore(engine) as checkpoints,
    ):
        reader: asyncio.Task[None] | None = None
        try:
            await _seed(engine, streams, per_stream)
            new = tuple((f"s{s}", per_stream) for s in range(streams))
            await rows.write_batch([(StreamSummary(id=f"s{s}", events=per_stream), 1) for s in range(streams)], ())
            await rows.upsert(LEGACY, version=1)  # the serving version: complete, plus a marker
            old = tuple(sorted((*new, (LEGACY.id, 0))))
            await checkpoints.save("stream-summaries", total)
            env = _environment(settings)

            reader = asyncio.create_task(_read_in_a_loop(rows, seen, done))
            code, out, err = await _rebuild(env, interrupt_after=1)
            assert code == 130, err
            assert "stopped at position" in err and "the old version keeps serving" in err
            interrupted = json.loads(out)
            assert interrupted["switched"] is False and interrupted["position"] < total
            progress = [line for line in err.splitlines() if re.search(r"/[\d,]+ events \(.*events/s, ETA", line)]
            assert progress, err  # plain lines on a pipe, no carriage returns
            assert "\r" not in err
            stopped_at = await checkpoints.load(rebuild_checkpoint("stream-summaries"))
            assert 0 < stopped_at < total
            assert await _served(rows) == old and await rows.has_shadow()

            code, out, err = await _rebuild(env, interrupt_after=None)
            done.set()
            await reader
            reader = None
            assert code == 0, err
            assert f"resuming the interrupted rebuild at position {stopped_at:,} of {total:,}" in err
            summary = json.loads(out)
            assert summary["switched"] is True and summary["resumed_from"] == stopped_at
            assert summary["position"] == summary["head"] == total
            assert summary["events"] == total - stopped_at
            assert await _served(rows) == new
            assert await checkpoints.load("stream-summaries") == total
            assert await checkpoints.load(rebuild_checkpoint("stream-summaries")) == 0
            assert set(seen) == {old, new} and set(seen[seen.index(new) :]) == {new}
        finally:
            done.set()
            if reader is not None:
                await asyncio.gather(reader, return_exceptions=True)
            await engine.execute(f"DROP DATABASE IF EXISTS {settings.database}")


async def test_a_rebuild_hands_over_to_the_service_runner_in_another_process(
    clickhouse_server_settings: ClickHouseSettings,
) -> None:
    """Three processes: this one appending, the service's runner, `bento projections rebuild`.
    The runner pauses for the switch and goes on from the rebuilt checkpoint; the result equals
    a read model built from scratch."""
    settings = clickhouse_server_settings.model_copy(update={"database": f"rb_{uuid.uuid4().hex[:10]}"})
    async with (
        open_engine(settings) as engine,
        ClickHouseEventStore(engine, single_writer=True) as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table="stream_summary") as rows,
        ClickHouseReadModel(engine, StreamSummary, table="fresh") as fresh,
    ):
        live: asyncio.subprocess.Process | None = None
        try:
            await fill(store, streams=6, per_stream=200)
            env = _environment(settings)
            live = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "_live_runner.py"), settings.host, str(settings.port), settings.database,
                env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert live.stdout is not None
            assert (await asyncio.wait_for(live.stdout.readline(), 60)).strip() == b"ready"
            appending = asyncio.Event()

            async def append_more() -> None:
                version = 200
                while not appending.is_set():
                    await asyncio.gather(
                        *(store.append(f"s{s}", [make_event(version, key=f"s{s}")], version) for s in range(6))
                    )
                    version += 1
                    await asyncio.sleep(0.02)

            appender = asyncio.create_task(append_more())
            code, out, err = await _rebuild(env, interrupt_after=None)
            appending.set()
            await appender
            assert code == 0, err
            assert "asking the service's runner of stream-summaries to pause" in err
            assert json.loads(out)["switched"] is True
            head = await store.last_position()
            await asyncio.wait_for(_caught_up(checkpoints, "stream-summaries", head), 60)
            assert await checkpoints.load("stream-summaries@paused") > 0  # the runner answered
            await ProjectionRunner(Summaries(fresh), store, checkpoints, name="fresh").run_until_caught_up()
            assert head > 1200 and await rows.find(order_by="id") == await fresh.find(order_by="id")
        finally:
            if live is not None and live.returncode is None:
                live.terminate()
                await live.wait()
            await engine.execute(f"DROP DATABASE IF EXISTS {settings.database}")
