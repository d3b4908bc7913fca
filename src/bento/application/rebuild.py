"""Zero-downtime projection rebuild: a new version of the read models, built beside the serving one.

`ProjectionRebuild` replays the whole event store into the *shadow* of every read model the
projection writes through `Projection.use` (see `RebuildableReadModel`), while queries keep
reading the serving version. When the shadow has caught up with the head of the store it is
promoted in one step, and the live projection's checkpoint is set to the rebuilt one, so
the service's runner carries on from there.

* Its checkpoint, `<name>@rebuild`, is separate from the live one: an interrupted rebuild
  (Ctrl-C, a crash) leaves the old version serving, and the next rebuild resumes from it
  into the same shadow. A resumed rebuild whose shadow is gone (a memory read model in a
  new process, a dropped table) starts over from zero.
* The switch — promote, catch up again, move the live checkpoint, reset the rebuild's —
  runs to the end once begun, even when `stop` is set meanwhile.
* The service's own runner may keep running: it writes the serving version, the rebuild
  the shadow. Between the promotion and its next poll the live runner may still flush
  a batch read before the switch into the old table, so the rebuild replays from its
  checkpoint to the head once more after promoting. That is safe for the projections
  `Projection` asks for anyway (writes versioned by position, accumulators skipping
  positions they have seen): two runners applying the same events in the same order
  write the same rows.
* The rebuild needs its own projection instance (the CLI builds one per process): it
  points that instance's buffers at the shadows, which must not redirect the live
  runner's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.read_model import RebuildableReadModel
from bento.application.projections import Projection, ProjectionRunner
from bento.application.read_model_buffer import ReadModelBuffer
from bento.application.serialization import JsonCodec
from bento.domain.errors import BentoError

logger = logging.getLogger(__name__)

#: Appended to a projection's name to name the rebuild's own checkpoint.
REBUILD_SUFFIX = "@rebuild"


def rebuild_checkpoint(name: str) -> str:
    """The checkpoint name of `name`'s rebuild."""
    return name + REBUILD_SUFFIX


class RebuildNotSupportedError(BentoError):
    """The projection writes something that cannot be built beside the serving version."""


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """Where a rebuild is: `done` of `total` events since it (re)started, at `rate` events/s."""

    name: str
    phase: str  # "starting", "replaying", "switching", "done" or "interrupted"
    position: int
    head: int
    done: int
    total: int
    rate: float
    elapsed: float
    resumed_from: int = 0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before any event was read)."""
        if self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What a rebuild did; `switched` is False when it was stopped before the switch."""

    name: str
    switched: bool
    resumed_from: int
    position: int
    head: int
    events: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _TrackedCheckpoints:
    """The checkpoint store, remembering the last position saved (for progress lines)."""

    def __init__(self, inner: CheckpointStore) -> None:
        self.inner = inner
        self.last: int | None = None

    async def load(self, name: str) -> int:
        return await self.inner.load(name)

    async def save(self, name: str, position: int) -> None:
        await self.inner.save(name, position)
        self.last = position

    async def all(self) -> dict[str, int]:
        return await self.inner.all()


class _Position:
    """A checkpoint held in memory: the post-switch catch-up runs from a known position
    without writing any store checkpoint of its own."""

    def __init__(self, position: int) -> None:
        self.position = position

    async def load(self, name: str) -> int:
        return self.position

    async def save(self, name: str, position: int) -> None:
        self.position = position

    async def all(self) -> dict[str, int]:
        return {}


class ProjectionRebuild:
    """Rebuild one projection without downtime; see the module docstring.

    `on_progress` is called every `progress_interval` seconds while replaying, and once
    per phase change."""

    def __init__(
        self,
        projection: Projection,
        store: EventStore,
        checkpoints: CheckpointStore,
        *,
        codec: JsonCodec | None = None,
        batch_size: int = 10_000,
        name: str | None = None,
        on_progress: Callable[[RebuildProgress], None] | None = None,
        progress_interval: float = 2.0,
    ) -> None:
        self.projection = projection
        self.store = store
        self.checkpoints = checkpoints
        self.codec = codec or JsonCodec()
        self.batch_size = batch_size
        self.name = name or projection.name
        self.checkpoint_name = rebuild_checkpoint(self.name)
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self._buffers: list[ReadModelBuffer[Any]] = list(projection._buffers())
        if not self._buffers:
            raise RebuildNotSupportedError(
                f"projection {self.name!r} writes no read model through Projection.use, so there is no "
                "version to build beside the serving one; rebuild it in place (ProjectionRunner.rebuild, "
                "`bento projections rebuild --in-place`)"
            )
        for buffer in self._buffers:
            if not all(hasattr(buffer.target, m) for m in ("shadow", "has_shadow", "promote_shadow", "drop_shadow")):
                raise RebuildNotSupportedError(
                    f"projection {self.name!r} writes {type(buffer.target).__name__}, which cannot hold a "
                    "second version (it is no RebuildableReadModel); rebuild it in place (`--in-place`)"
                )
        self._serving = [cast(RebuildableReadModel[Any], buffer.target) for buffer in self._buffers]

    async def run(self, *, stop: asyncio.Event | None = None, restart: bool = False) -> RebuildResult:
        """Replay into the shadows, then switch; returns early (switched=False) when `stop`
        is set before the switch. `restart` discards a previous interrupted rebuild."""
        started = time.monotonic()
        stop = stop or asyncio.Event()
        tracked = _TrackedCheckpoints(self.checkpoints)
        resumed_from = 0 if restart else await self.checkpoints.load(self.checkpoint_name)
        if resumed_from and not all([await m.has_shadow() for m in self._serving]):
            logger.warning("rebuild of %s: the shadow read model is gone; starting over from 0", self.name)
            resumed_from = 0
        if resumed_from == 0:
            for model in self._serving:
                await model.drop_shadow()
            await self.checkpoints.save(self.checkpoint_name, 0)
        tracked.last = resumed_from
        head_at_start = await self.store.last_position()
        state = _Reporter(self, tracked, resumed_from, started)
        state.report("starting", head_at_start)
        try:
            for buffer, model in zip(self._buffers, self._serving, strict=True):
                buffer.target = await model.shadow()
            runner = ProjectionRunner(
                self.projection,
                self.store,
                tracked,
                codec=self.codec,
                batch_size=self.batch_size,
                name=self.checkpoint_name,
            )
            if not await _until_stopped(runner.run_until_caught_up(), stop, state):
                position = tracked.last or 0
                state.report("interrupted", await self.store.last_position())
                return RebuildResult(
                    self.name, False, resumed_from, position, await self.store.last_position(),
                    position - resumed_from, time.monotonic() - started,
                )  # fmt: skip
            state.report("switching", await self.store.last_position())
            position = await self._switch(tracked)
        finally:
            for buffer, model in zip(self._buffers, self._serving, strict=True):
                buffer.target = model
        head = await self.store.last_position()
        state.report("done", head)
        return RebuildResult(
            self.name, True, resumed_from, position, head, position - resumed_from, time.monotonic() - started
        )

    async def _switch(self, tracked: _TrackedCheckpoints) -> int:
        """Promote every shadow, catch up once more on the serving version, move the live
        checkpoint; shielded, so a stop request waits for it."""

        async def switch() -> int:
            built = await self.checkpoints.load(self.checkpoint_name)
            for buffer, model in zip(self._buffers, self._serving, strict=True):
                await model.promote_shadow()
                buffer.target = model
            after = _Position(built)
            await ProjectionRunner(
                self.projection, self.store, after, codec=self.codec, batch_size=self.batch_size, name=self.name
            ).run_until_caught_up()
            await self.checkpoints.save(self.name, after.position)
            await self.checkpoints.save(self.checkpoint_name, 0)
            tracked.last = after.position
            logger.info("rebuild of %s switched at position %d", self.name, after.position)
            return after.position

        task = asyncio.ensure_future(switch())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await task  # let the switch finish before giving way
            raise


class _Reporter:
    """Builds RebuildProgress values for the callback."""

    def __init__(self, rebuild: ProjectionRebuild, tracked: _TrackedCheckpoints, start: int, started: float) -> None:
        self.rebuild, self.tracked, self.start, self.started = rebuild, tracked, start, started

    def report(self, phase: str, head: int) -> None:
        if self.rebuild.on_progress is None:
            return
        position = self.tracked.last or self.start
        elapsed = time.monotonic() - self.started
        done = position - self.start
        self.rebuild.on_progress(
            RebuildProgress(
                name=self.rebuild.name,
                phase=phase,
                position=position,
                head=head,
                done=done,
                total=max(head - self.start, done),
                rate=done / elapsed if elapsed > 0 else 0.0,
                elapsed=elapsed,
                resumed_from=self.start,
            )
        )


async def _until_stopped(work: Any, stop: asyncio.Event, state: _Reporter) -> bool:
    """Run `work`, reporting progress every interval; True when it finished, False when
    `stop` was set first (the work is then cancelled: its checkpoint stays at the last
    committed batch)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            done, _ = await asyncio.wait(
                {task, stopping}, timeout=state.rebuild.progress_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()
                return True
            if stopping in done:
                return False
            state.report("replaying", await state.rebuild.store.last_position())
    finally:
        for pending in (task, stopping):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
