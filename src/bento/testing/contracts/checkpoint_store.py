"""CheckpointStoreContract. Subclasses provide a `checkpoints` fixture."""

from __future__ import annotations

import asyncio
import uuid

from bento.application.ports.checkpoint_store import CheckpointStore


class CheckpointStoreContract:
    async def test_unknown_name_is_zero(self, checkpoints: CheckpointStore) -> None:
        assert await checkpoints.load(f"never-{uuid.uuid4().hex}") == 0

    async def test_save_then_load(self, checkpoints: CheckpointStore) -> None:
        name = f"proj-{uuid.uuid4().hex}"
        await checkpoints.save(name, 42)
        assert await checkpoints.load(name) == 42
        await checkpoints.save(name, 43)
        assert await checkpoints.load(name) == 43

    async def test_rebuild_can_reset_to_zero(self, checkpoints: CheckpointStore) -> None:
        name = f"proj-{uuid.uuid4().hex}"
        await checkpoints.save(name, 10)
        await checkpoints.save(name, 0)
        assert await checkpoints.load(name) == 0

    async def test_names_are_independent_and_listed(self, checkpoints: CheckpointStore) -> None:
        a, b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
        await asyncio.gather(checkpoints.save(a, 1), checkpoints.save(b, 2))
        listed = await checkpoints.all()
        assert listed[a] == 1 and listed[b] == 2

    async def test_many_saves_keep_the_last(self, checkpoints: CheckpointStore) -> None:
        name = f"proj-{uuid.uuid4().hex}"
        for position in range(1, 51):
            await checkpoints.save(name, position)
        assert await checkpoints.load(name) == 50
