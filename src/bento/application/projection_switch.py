"""The hand-over between a projection rebuild and the service's runner of the same projection.

A rebuild (`bento.application.rebuild`) builds the new version of the read models beside the
serving one while the service's `ProjectionRunner` keeps the serving version current. At the
switch the runner must stand still for a moment: a runner that had written events into the
old version and then read a row back from the new one, which does not have them yet, would
write that row without them, and its newer version would keep the gap for good.

The two talk through the checkpoint store, so they may live in different processes:

* the rebuild saves `<name>@pause` = a deadline (milliseconds since the epoch), a lease;
* a runner in `run()` looks at it before each poll and after each checkpoint save; while the
  lease holds it stops reading, answers with `<name>@paused` = the same deadline, and waits;
* the rebuild, once answered (or when no runner moved the checkpoint for a while), catches
  the new version up, switches, moves the live checkpoint and clears the pause (0). A rebuild
  that dies meanwhile holds the runner at most until the lease ends.

A runner pays one checkpoint read per batch and per idle poll for this.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bento.application.ports.checkpoint_store import CheckpointStore
from bento.domain.errors import BentoError

PAUSE_SUFFIX = "@pause"
ACK_SUFFIX = "@paused"


def now_ms() -> int:
    return int(time.time() * 1000)


class SwitchPausedError(Exception):
    """Raised inside a runner's catch-up after a checkpoint save, when a switch asks it to stop."""


class SwitchAwareCheckpoints:
    """The runner's checkpoint store during `ProjectionRunner.run`: after saving the runner's
    own checkpoint it looks for a pause request, and `guard` wraps each poll with the wait."""

    def __init__(self, inner: CheckpointStore, name: str, interval: float) -> None:
        self.inner, self.name = inner, name
        self.interval = min(max(interval, 0.01), 0.5)

    async def load(self, name: str) -> int:
        return await self.inner.load(name)

    async def save(self, name: str, position: int) -> None:
        await self.inner.save(name, position)
        if name == self.name and await self.pause_requested():
            raise SwitchPausedError(name)

    async def all(self) -> dict[str, int]:
        return await self.inner.all()

    async def pause_requested(self) -> int:
        """The lease of a pending pause request, or 0."""
        lease = await self.inner.load(self.name + PAUSE_SUFFIX)
        return lease if lease > now_ms() else 0

    async def wait_while_paused(self) -> None:
        while lease := await self.pause_requested():
            await self.inner.save(self.name + ACK_SUFFIX, lease)
            await asyncio.sleep(self.interval)

    def guard(self, step: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        async def guarded() -> int:
            await self.wait_while_paused()
            try:
                return await step()
            except SwitchPausedError:
                await self.wait_while_paused()
                return 1  # look again at once, from the checkpoint the switch left

        return guarded


class LiveRunnerBusyError(BentoError):
    """A runner keeps moving the live checkpoint without answering the pause request."""


async def pause_live_runner(
    checkpoints: CheckpointStore, name: str, *, lease: float, quiet: float, patience: float
) -> int:
    """Ask the runner of `name` to stand still; returns the lease (pass it to `resume_live_runner`).

    Returns once a runner answered, or once the live checkpoint stayed put for `quiet` seconds
    (no runner is running). A checkpoint that keeps moving without an answer for `patience`
    seconds (a runner of a Bento that does not know the request) is a LiveRunnerBusyError."""
    token = now_ms() + int(lease * 1000)
    await checkpoints.save(name + PAUSE_SUFFIX, token)
    last = await checkpoints.load(name)
    started = still_since = time.monotonic()
    moved = False
    while True:
        if await checkpoints.load(name + ACK_SUFFIX) == token:
            return token
        position = await checkpoints.load(name)
        now = time.monotonic()
        if position != last:
            last, still_since, moved = position, now, True
        if not moved and now - still_since >= quiet:
            return token
        if now - started >= patience:
            await resume_live_runner(checkpoints, name)
            raise LiveRunnerBusyError(
                f"the runner of projection {name!r} keeps moving its checkpoint and did not pause for the "
                f"switch within {patience:.0f} s (a service on an older Bento?); stop it and run the rebuild "
                "again: it resumes where it stopped"
            )
        await asyncio.sleep(0.02)


async def resume_live_runner(checkpoints: CheckpointStore, name: str) -> None:
    await checkpoints.save(name + PAUSE_SUFFIX, 0)
