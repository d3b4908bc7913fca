"""The service's runner of `stream-summaries`, as a child process of the rebuild tests.

    python _live_runner.py HOST PORT DB

Runs `ProjectionRunner.run` on the default tables until SIGTERM; prints "ready" once started.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from _projection_helpers import StreamSummary, Summaries

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.application.projections import ProjectionRunner


async def main(host: str, port: str, database: str) -> None:
    settings = ClickHouseSettings(mode="server", host=host, port=int(port), database=database)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        open_engine(settings) as engine,
        ClickHouseEventStore(engine, single_writer=True) as store,
        ClickHouseCheckpointStore(engine) as checkpoints,
        ClickHouseReadModel(engine, StreamSummary, table="stream_summary") as rows,
    ):
        runner = ProjectionRunner(Summaries(rows), store, checkpoints, batch_size=20, poll_interval=0.05)
        print("ready", flush=True)
        await runner.run(stop=stop)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
