"""BacklogProbe on Redis Streams: the group's `lag` (XINFO GROUPS; entries not yet delivered to
the group, summed over the topic's partition streams) and the dead-letter stream's XLEN.

Redis reports no lag after entries were deleted from the middle of a stream; the group's
figure is then None (unknown) rather than a guess. Broadcast (pub/sub) mode keeps nothing,
so it has no backlog to report."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bento.adapters.redis._keys import Keys
from bento.application.ports.backlog import Backlog


async def probe(redis: Redis, keys: Keys, topic: str, group: str) -> Backlog:
    waiting: int | None = 0
    found = False
    for stream in keys.streams(topic):
        try:
            groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            continue
        entry = next((g for g in groups if _text(g.get("name")) == group), None)
        if entry is None:
            continue
        found = True
        lag = entry.get("lag")
        waiting = None if lag is None or waiting is None else waiting + int(lag)
    dead = int(await redis.xlen(keys.dead_letters(topic, group)))
    return Backlog(topic, group, waiting if found else None, dead if found or dead else None)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
