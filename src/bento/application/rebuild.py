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
* The switch runs to the end once begun, even when `stop` is set meanwhile: the service's
  runner of the projection is asked to stand still (`bento.application.projection_switch`;
  it may keep running during the whole rebuild otherwise), the new version is caught up to
  the head, promoted, the live checkpoint set to the rebuilt position, the rebuild's reset,
  and the runner goes on from there, on the new version. Without the pause a runner that
  wrote events into the old version and then read a row back from the new one would write
  that row without them (projections that accumulate read their rows back).
* Replaying runs in passes to the head as each pass began, and the switch takes the last
  batch or so: steady appends delay a rebuild only while they outpace it.
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
from bento.application.ports.event_store import EventStore, StoredEvent
from bento.application.ports.read_model import RebuildableReadModel
from bento.application.projection_switch import pause_live_runner, resume_live_runner
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
    phase: str  # "starting", "replaying", "pausing" (the live runner), "switching", "done" or "interrupted"
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


class _UpTo:
    """The event store as far as `head`: the catch-up after the switch ends there even
    while appends go on (the live runner takes the rest)."""

    def __init__(self, store: EventStore, head: int) -> None:
        self.store, self.head = store, head

    async def read_all(self, after_position: int, limit: int) -> list[StoredEvent]:
        if after_position >= self.head:
            return []
        return [e for e in await self.store.read_all(after_position, limit) if e.position <= self.head]

    async def last_position(self) -> int:
        return self.head

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


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
        switch_quiet: float = 2.0,
        switch_patience: float = 30.0,
        switch_lease: float = 120.0,
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
        self.switch_quiet, self.switch_patience, self.switch_lease = switch_quiet, switch_patience, switch_lease
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
            if not await _until_stopped(self._catch_up(tracked), stop, state):
                position = tracked.last or 0
                state.report("interrupted", await self.store.last_position())
                return RebuildResult(
                    self.name, False, resumed_from, position, await self.store.last_position(),
                    position - resumed_from, time.monotonic() - started,
                )  # fmt: skip
            paused = asyncio.ensure_future(
                pause_live_runner(
                    self.checkpoints,
                    self.name,
                    lease=self.switch_lease,
                    quiet=self.switch_quiet,
                    patience=self.switch_patience,
                )
            )
            state.report("pausing", await self.store.last_position())
            if not await _until_stopped(paused, stop, state, progress=False):
                await resume_live_runner(self.checkpoints, self.name)
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

    async def _replay_to(self, head: int, tracked: _TrackedCheckpoints) -> int:
        """Apply the events after the rebuild's checkpoint up to `head` to the shadows; returns
        the checkpoint reached."""
        await ProjectionRunner(
            self.projection,
            cast(EventStore, _UpTo(self.store, head)),
            tracked,
            codec=self.codec,
            batch_size=self.batch_size,
            name=self.checkpoint_name,
        ).run_until_caught_up()
        return await tracked.load(self.checkpoint_name)

    async def _catch_up(self, tracked: _TrackedCheckpoints) -> None:
        """Replay in passes, each to the head as it was when the pass began, until less than
        a batch is left: the switch takes that rest, so steady appends cannot keep a rebuild
        from ever switching as long as it replays faster than events arrive."""
        while True:
            position = await self._replay_to(await self.store.last_position(), tracked)
            if await self.store.last_position() - position <= self.batch_size:
                return

    async def _switch(self, tracked: _TrackedCheckpoints) -> int:
        """With the live runner standing still: catch the new version up to the head, promote
        every shadow, move the live checkpoint, let the runner go. Shielded: a stop request
        waits for it."""

        async def switch() -> int:
            try:
                built = await self._replay_to(await self.store.last_position(), tracked)
                for buffer, model in zip(self._buffers, self._serving, strict=True):
                    await model.promote_shadow()
                    buffer.target = model
                await self.checkpoints.save(self.name, built)
                await self.checkpoints.save(self.checkpoint_name, 0)
            finally:
                await resume_live_runner(self.checkpoints, self.name)
            logger.info("rebuild of %s switched at position %d", self.name, built)
            return built

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


async def _until_stopped(work: Any, stop: asyncio.Event, state: _Reporter, *, progress: bool = True) -> bool:
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
            if progress:
                state.report("replaying", await state.rebuild.store.last_position())
    finally:
        for pending in (task, stopping):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
