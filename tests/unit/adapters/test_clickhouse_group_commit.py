"""The group commit's batching, on a fake commit (no database): batches follow the backlog."""

from __future__ import annotations

import asyncio

from bento.adapters.clickhouse._group_commit import GroupCommitter, PendingAppend
from bento.application.serialization import JsonCodec
from bento.testing.events import make_event


async def test_callers_that_fell_out_of_step_share_one_batch_again() -> None:
    sizes: list[int] = []

    async def commit(batch: list[PendingAppend]) -> None:
        sizes.append(len(batch))
        await asyncio.sleep(0.01)  # the INSERT
        for pending in batch:
            pending.future.set_result(1)

    committer = GroupCommitter(commit, window=0.002, max_events=10_000)
    committer.start()
    encoded = JsonCodec().encode_many_for_store([make_event(0)])

    async def caller(delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in range(20):
            await committer.submit("s", -1, encoded)

    # One caller starts alone; nine arrive while its first commit runs. Callers in a loop
    # must then merge into one batch per commit, not alternate (1, 9, 1, 9, ...).
    await asyncio.gather(caller(0.0), *(caller(0.005) for _ in range(9)))
    await committer.close()
    assert sum(sizes) == 200
    assert len(sizes) <= 23, sizes
    assert sizes[2:-1] == [10] * (len(sizes) - 3), sizes  # in step from the second commit on
