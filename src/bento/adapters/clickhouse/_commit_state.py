"""What a store remembers about its table between commits, and when it may trust it.

Every batch must know, under the table lock, the highest position and the current
version of each stream it appends to. Reading them costs a query per batch, so the
store keeps them in memory (`CommitState`) and skips the query while nobody else has
written the table since its own last commit. It knows that through a *commit marker*
kept next to the lock (`_commit_marks`):

* the lock holder reads the marker when it takes the lock and leaves it "busy" for as
  long as it holds it;
* after its INSERT succeeded it publishes a fresh random token (``c:<uuid>``) and
  remembers it; a commit that failed or was abandoned publishes nothing, so the marker
  stays absent (or busy) and every writer, this one included, reloads.

So "the marker equals the token I published last" means no other writer committed in
between, and the cached head and versions are exact. Tokens are random rather than
the last position because a failed INSERT can reuse positions: a position could come
back as a marker value and be mistaken for freshness; a random token cannot.

When the marker is another writer's token, only rows with a position above the cached
head can be new (positions are allocated under the same lock), so one delta query
(`position > head`, grouped by stream) brings the cache up to date. Anything else
(absent, busy, poisoned by a holder that lost its lease) resets the cache.

Versions live in a bounded LRU (`capacity` streams). While the table holds no more
than `capacity` rows, the whole stream -> version map is loaded once and is *complete*:
a stream not in it has version 0, so a batch of new streams needs no query at all.
Past that, the streams of a batch that are not cached are read in one query.

Every write to the table must go through stores that use markers (all of bento's do):
a row inserted behind their back would not move the marker.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Literal

from bento.adapters.clickhouse.engine import ClickHouseEngine

COMMITTED = "c:"

#: Streams per version query: far below the server's max_query_size (256 KiB on 18.16).
_STREAMS_PER_QUERY = 500

Freshness = Literal["fresh", "delta", "reset"]


def new_token() -> str:
    return COMMITTED + uuid.uuid4().hex


class CommitState:
    """The cached head position and stream versions of one table, and the queries that
    refresh them. Used only under the table lock, by the store's one flusher."""

    def __init__(self, engine: ClickHouseEngine, table: str, *, capacity: int, marked: bool) -> None:
        self.engine = engine
        self.table_name = table
        self.table = engine.table(table)
        self.capacity = max(capacity, 0)
        self.marked = marked
        self.head: int | None = None
        self.complete = False
        self.token: str | None = None
        self._versions: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._versions)

    # -- the cache --------------------------------------------------------------------
    def freshness(self, seen: str | None) -> Freshness:
        if self.token is not None and seen == self.token:
            return "fresh"
        if seen is not None and seen.startswith(COMMITTED) and self.head is not None:
            return "delta"
        return "reset"

    def reset(self) -> None:
        self.head = None
        self.complete = False
        self.token = None
        self._versions.clear()

    def version(self, stream: str) -> int | None:
        """The stream's version if known: cached, or 0 when the cache is complete."""
        version = self._versions.get(stream)
        if version is not None:
            self._versions.move_to_end(stream)
            return version
        return 0 if self.complete else None

    def remember(self, stream: str, version: int) -> None:
        self._versions[stream] = version
        self._versions.move_to_end(stream)
        while len(self._versions) > self.capacity:
            self._versions.popitem(last=False)
            self.complete = False  # a forgotten stream is no longer known to be empty

    def committed(self, versions: dict[str, int], head: int) -> str:
        """Record a successful commit (or a batch that wrote nothing); the token to publish."""
        for stream, version in versions.items():
            self.remember(stream, version)
        self.head = head
        self.token = new_token()
        return self.token

    # -- reading under the lock ---------------------------------------------------------
    async def known(self, seen: str | None, streams: list[str]) -> tuple[dict[str, int], int]:
        """The head and the versions of `streams`: from the cache when the marker `seen`
        says it is fresh, else after bringing it up to date (module docstring)."""
        freshness = self.freshness(seen)
        self.token = None  # trusted again only once this commit publishes a new token
        if freshness == "delta":
            assert self.head is not None
            await self._read_delta(self.head)
        elif freshness == "reset":
            self.reset()
            if self.marked:
                await self._load_if_small()
        versions: dict[str, int] = {}
        missing: list[str] = []
        for stream in streams:
            version = self.version(stream)
            if version is None:
                missing.append(stream)
            else:
                versions[stream] = version
        if missing or self.head is None:
            read, head = await self._versions_and_head(missing, with_head=self.head is None)
            if self.head is None:
                self.head = head
            for stream in missing:
                versions[stream] = read.get(stream, 0)
        return versions, self.head

    async def _read_delta(self, head: int) -> None:
        # Another writer committed since our last commit: everything it wrote lies above
        # our head, because positions are allocated under the same lock.
        rows = await self.engine.execute(
            f"SELECT stream, max(version), max(position) FROM {self.table} WHERE position > %(head)s GROUP BY stream",
            {"head": head},
        )
        for stream, version, position in rows:
            self.remember(str(stream), int(version))
            head = max(head, int(position))
        self.head = head

    async def _load_if_small(self) -> None:
        # The whole stream -> version map, when it fits the cache (checked on the parts'
        # row counts first, so a large table is never scanned for it).
        rows = await self.engine.execute(
            "SELECT sum(rows) FROM system.parts WHERE active AND database = %(db)s AND table = %(table)s",
            {"db": self.engine.database, "table": self.table_name},
        )
        if (int(rows[0][0]) if rows and rows[0][0] is not None else 0) > self.capacity:
            return
        everything = await self.engine.execute(
            f"SELECT stream, max(version) FROM {self.table} GROUP BY stream "
            f"UNION ALL SELECT '', max(position) FROM {self.table}"
        )
        head = 0
        for stream, version in everything:
            if stream == "":
                head = int(version)
            else:
                self.remember(str(stream), int(version))
        self.head = head
        self.complete = len(everything) - 1 <= self.capacity  # nothing was evicted

    async def _versions_and_head(self, streams: list[str], *, with_head: bool) -> tuple[dict[str, int], int]:
        # One round trip: per-stream versions, plus the head position under the '' key
        # (empty stream names are refused by `append`); very large batches in chunks.
        versions: dict[str, int] = {}
        head = 0
        if not streams:
            rows = await self.engine.execute(f"SELECT max(position) FROM {self.table}")
            return versions, int(rows[0][0]) if rows else 0
        for start in range(0, len(streams), _STREAMS_PER_QUERY):
            chunk = tuple(streams[start : start + _STREAMS_PER_QUERY])
            sql = f"SELECT stream, max(version) FROM {self.table} WHERE stream IN %(streams)s GROUP BY stream"
            if start == 0 and with_head:
                sql += f" UNION ALL SELECT '', max(position) FROM {self.table}"
            rows = await self.engine.execute(sql, {"streams": chunk})
            versions.update((str(r[0]), int(r[1])) for r in rows)
            head = versions.pop("", head)
        return versions, head
