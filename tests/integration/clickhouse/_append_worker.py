"""One OS process of the multi-process append test (run as a script, prints JSON).

Every task owns one stream and tries `append(stream, [event], expected_version=k)` for
k = 0 .. rounds-1, whatever happened before: across all processes exactly one attempt
per (stream, k) can win, so the number of ConcurrencyErrors is known in advance."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bento.adapters.clickhouse.engine import open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.redis.stream_lock import RedisStreamLock
from bento.application.errors import ConcurrencyError
from bento.testing.events import make_event


async def main(
    host: str, port: int, database: str, table: str, prefix: str, streams: int, rounds: int, start_at: float
) -> dict[str, object]:
    settings = ClickHouseSettings(mode="server", host=host, port=port, database=database)
    won: list[str] = []
    conflicts = 0
    async with (
        open_engine(settings) as engine,
        RedisStreamLock(prefix=prefix) as lock,
        ClickHouseEventStore(engine, lock=lock, table=table) as store,
    ):

        async def writer(stream: str) -> None:
            nonlocal conflicts
            for k in range(rounds):
                event = make_event(k, key=stream)
                try:
                    await store.append(stream, [event], k)
                    won.append(event.message_id)
                except ConcurrencyError:
                    conflicts += 1

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(writer(f"s{n}") for n in range(streams)))
    return {"won": won, "conflicts": conflicts}


if __name__ == "__main__":
    host, port, database, table, prefix, streams, rounds, start_at = sys.argv[1:9]
    result = asyncio.run(main(host, int(port), database, table, prefix, int(streams), int(rounds), float(start_at)))
    print(json.dumps(result))
