"""StreamLockContract. Subclasses provide a `stream_lock` fixture (and may override
`second_lock` to return an independent holder, e.g. another client of the same server)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bento.application.errors import LockTimeoutError
from bento.application.ports.stream_lock import StreamLock


class StreamLockContract:
    @pytest.fixture
    def second_lock(self, stream_lock: StreamLock) -> StreamLock:
        return stream_lock

    async def test_holders_of_one_stream_take_turns(self, stream_lock: StreamLock, second_lock: StreamLock) -> None:
        stream = f"s-{uuid.uuid4().hex}"
        inside = 0
        most = 0

        async def critical(lock: StreamLock) -> None:
            nonlocal inside, most
            async with lock.hold([stream], timeout=5):
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(critical(stream_lock if n % 2 else second_lock) for n in range(10)))
        assert most == 1

    async def test_different_streams_do_not_wait(self, stream_lock: StreamLock, second_lock: StreamLock) -> None:
        a, b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
        async with stream_lock.hold([a], timeout=1):
            async with asyncio.timeout(1):
                async with second_lock.hold([b], timeout=1):
                    pass

    async def test_timeout_raises_lock_timeout_error(self, stream_lock: StreamLock, second_lock: StreamLock) -> None:
        stream = f"s-{uuid.uuid4().hex}"
        async with stream_lock.hold([stream], timeout=1):
            with pytest.raises(LockTimeoutError):
                async with second_lock.hold([stream], timeout=0.2):
                    pass

    async def test_released_after_an_error(self, stream_lock: StreamLock, second_lock: StreamLock) -> None:
        stream = f"s-{uuid.uuid4().hex}"
        with pytest.raises(RuntimeError):
            async with stream_lock.hold([stream], timeout=1):
                raise RuntimeError("boom")
        async with second_lock.hold([stream], timeout=1):
            pass

    async def test_overlapping_sets_do_not_deadlock(self, stream_lock: StreamLock, second_lock: StreamLock) -> None:
        a, b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"

        async def take(lock: StreamLock, streams: list[str]) -> None:
            for _ in range(10):
                async with lock.hold(streams, timeout=5):
                    await asyncio.sleep(0.001)

        async with asyncio.timeout(10):
            await asyncio.gather(take(stream_lock, [a, b]), take(second_lock, [b, a]))
