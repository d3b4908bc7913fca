"""Projections: read models kept up to date from the event store's global order.

A `Projection` declares one handler per event type, either with `@handles(OrderPlaced)`
or by naming a method `on_OrderPlaced`. Handlers receive the decoded event and,
if they take a second argument, its `StoredEvent` (position, stream, version).

A `ProjectionRunner` reads `read_all` after the projection's checkpoint, applies the
events in order, asks the projection to `commit` (flush its read-model writes) and
only then saves the checkpoint. A crash between the two replays that batch on
restart, so delivery to handlers is at-least-once and handlers must be idempotent:
write with `version=stored.position` (the read model ignores older writes), and for
accumulating fields keep the last applied position in the record and skip events at
or below it. `rebuild` clears the read models, resets the checkpoint to zero and
replays everything, which gives the same read model as the incremental run.
With tracing on, each batch is an INTERNAL `project <name>` span (`project_span`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from bento.application import telemetry
from bento.application.errors import BrokerUnavailableError, DeserializationError
from bento.application.polling import poll_until_stopped
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore, StoredEvent
from bento.application.ports.read_model import ReadModelPort
from bento.application.projection_switch import SwitchAwareCheckpoints
from bento.application.read_model_buffer import ReadModelBuffer
from bento.application.serialization import JsonCodec
from bento.domain.errors import BentoError, InvalidMessageDefinitionError
from bento.domain.events import DomainEvent, concrete_event_types

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=DomainEvent)
M = TypeVar("M", bound=BaseModel)
_Handler = Callable[..., Any]


def handles(*event_types: type[DomainEvent]) -> Callable[[_Handler], _Handler]:
    """Mark a projection method as the handler of one or more event types."""
    if not event_types:
        raise InvalidMessageDefinitionError("@handles needs at least one event type")

    def mark(method: _Handler) -> _Handler:
        method.__bento_handles__ = event_types  # type: ignore[attr-defined]
        return method

    return mark


class ProjectionError(BentoError):
    """A handler failed (or its event could not be decoded) at a position; the runner
    stops there without moving the checkpoint, so a fix and a restart resume at it."""

    def __init__(self, projection: str, position: int, event_type: str, reason: str) -> None:
        super().__init__(
            f"projection {projection!r} failed at position {position} ({event_type}): {reason}; "
            "the checkpoint stays before this event"
        )
        self.projection, self.position, self.event_type, self.reason = (
            projection,
            position,
            event_type,
            reason,
        )


@dataclass(frozen=True, slots=True)
class _Bound:
    function: _Handler
    wants_stored: bool


class Projection:
    """Base class of projections; see the module docstring.

    `name` (class keyword or attribute; default the class name) is the checkpoint name.
    Read models wrapped with `self.use(read_model)` are buffered, flushed by `commit`
    before every checkpoint, and cleared by `clear` before a rebuild. Override `commit`
    and `clear` for any other state the projection writes.
    """

    name: ClassVar[str] = ""
    _marked: ClassVar[dict[type[DomainEvent], str]] = {}
    _table: ClassVar[dict[str, _Bound] | None] = None

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        elif not cls.__dict__.get("name"):
            cls.name = cls.__name__
        marked: dict[type[DomainEvent], str] = {}
        for klass in reversed(cls.__mro__):
            for attr_name, attr in vars(klass).items():
                for event_type in getattr(attr, "__bento_handles__", ()):
                    marked[event_type] = attr_name
        cls._marked = marked
        cls._table = None  # resolved on first use, once every event class is defined

    # -- handler table --------------------------------------------------------------
    @classmethod
    def handler_table(cls) -> dict[str, _Bound]:
        """Wire name -> handler, built once per class."""
        if cls._table is None:
            table: dict[str, _Bound] = {}
            for event_type, attr_name in cls._marked.items():
                table[event_type.__wire_name__] = cls._bind(getattr(cls, attr_name))
            by_class_name = _event_types_by_class_name()
            for attr_name in dir(cls):
                if not attr_name.startswith("on_"):
                    continue
                candidates = by_class_name.get(attr_name[3:], [])
                if len(candidates) > 1:
                    raise InvalidMessageDefinitionError(
                        f"{cls.__name__}.{attr_name}: several event classes are named {attr_name[3:]}; "
                        "use @handles(EventType) instead"
                    )
                if candidates and candidates[0].__wire_name__ not in table:
                    table[candidates[0].__wire_name__] = cls._bind(getattr(cls, attr_name))
            cls._table = table
        return cls._table

    @staticmethod
    def _bind(function: _Handler) -> _Bound:
        parameters = list(inspect.signature(function).parameters.values())
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return _Bound(function, wants_stored=len(positional) >= 3)  # self, event, stored

    def handled_types(self) -> frozenset[str]:
        """Wire names this projection reacts to; the runner decodes no other event."""
        return frozenset(self.handler_table())

    # -- applying -------------------------------------------------------------------
    async def apply(self, event: DomainEvent, stored: StoredEvent) -> None:
        bound = self.handler_table().get(stored.event_type)
        if bound is None:
            return
        result = bound.function(self, event, stored) if bound.wants_stored else bound.function(self, event)
        if inspect.isawaitable(result):
            await result

    # -- read models ----------------------------------------------------------------
    def use(self, read_model: ReadModelPort[M]) -> ReadModelBuffer[M]:
        """Buffer writes to `read_model`; flushed by `commit`, cleared by `clear`."""
        buffer = ReadModelBuffer(read_model)
        self._buffers().append(buffer)
        return buffer

    def _buffers(self) -> list[ReadModelBuffer[Any]]:
        buffers: list[ReadModelBuffer[Any]] | None = self.__dict__.get("_bento_buffers")
        if buffers is None:
            buffers = self.__dict__["_bento_buffers"] = []
        return buffers

    async def commit(self) -> None:
        """Make every write so far durable (called before each checkpoint save)."""
        for buffer in self._buffers():
            await buffer.flush()

    async def discard(self) -> None:
        """Forget unflushed writes after a failed batch (it will be replayed)."""
        for buffer in self._buffers():
            buffer.discard()

    async def clear(self) -> None:
        """Empty every read model (before a rebuild from position zero)."""
        for buffer in self._buffers():
            await buffer.clear()


def _event_types_by_class_name() -> dict[str, list[type[DomainEvent]]]:
    out: dict[str, list[type[DomainEvent]]] = {}
    for klass in concrete_event_types():
        out.setdefault(klass.__name__, []).append(klass)
    return out


def project_span(name: str, batch: list[StoredEvent]) -> tuple[str, str, dict[str, Any], list[Any]]:
    """The arguments of `telemetry.span` for one projection batch: INTERNAL `project <name>`
    with the batch's size and positions, linked to the contexts stored with its events (a batch
    mixes many traces, so it parents on none of them)."""
    attributes: dict[str, Any] = {
        "bento.projection.name": name,
        "bento.projection.batch.size": len(batch),
        "bento.projection.position.first": batch[0].position,
        "bento.projection.position.last": batch[-1].position,
    }
    return f"project {name}", "INTERNAL", attributes, telemetry.links_to_stored([s.metadata for s in batch])


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection is, against the head of the store."""

    name: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


class ProjectionRunner:
    """Feeds one projection from an EventStore, checkpointing in a CheckpointStore.

    One runner per projection name at a time: two runners of the same projection would
    both apply every event (harmless for idempotent handlers, but wasted work).
    `batch_size` events are read, applied and written per checkpoint: large batches
    (10,000 by default) make a catch-up a few large reads and read-model writes
    rather than many round trips.
    """

    def __init__(
        self,
        projection: Projection,
        store: EventStore,
        checkpoints: CheckpointStore,
        *,
        codec: JsonCodec | None = None,
        batch_size: int = 10_000,
        poll_interval: float = 0.5,
        name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.projection = projection
        self.store = store
        self.checkpoints = checkpoints
        self.codec = codec or JsonCodec()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.name = name or projection.name

    async def status(self) -> ProjectionStatus:
        position = await self.checkpoints.load(self.name)
        return ProjectionStatus(self.name, position, await self.store.last_position())

    async def run_until_caught_up(self) -> int:
        """Apply every event after the checkpoint; returns how many events were read.

        The next batch is read while the current one is applied (positions are known
        in advance), so the store's round trip overlaps decoding and handlers, and a
        batch's checkpoint is saved while the next one is applied."""
        position = await self.checkpoints.load(self.name)
        wanted = self.projection.handled_types()
        total = 0
        upcoming = asyncio.ensure_future(self.store.read_all(position, self.batch_size))
        saving: asyncio.Future[None] | None = None
        try:
            while True:
                batch = await upcoming
                if not batch:
                    if saving is not None:
                        await saving
                    return total
                upcoming = asyncio.ensure_future(self.store.read_all(batch[-1].position, self.batch_size))
                try:
                    if telemetry.tracer is None:
                        await self._apply_batch(batch, wanted)
                    else:
                        with telemetry.span(*project_span(self.name, batch)):
                            await self._apply_batch(batch, wanted)
                except BaseException:
                    await self.projection.discard()
                    raise
                # The checkpoint of a committed batch is saved while the next batch is
                # applied; checkpoints still land in order, each after its batch's commit.
                if saving is not None:
                    await saving
                saving = asyncio.ensure_future(self.checkpoints.save(self.name, batch[-1].position))
                total += len(batch)
        finally:
            await _settle(upcoming)
            if saving is not None and not saving.done():
                await asyncio.wait([saving])  # a committed batch's checkpoint is still progress
            if saving is not None and not saving.cancelled() and saving.exception() is not None:
                logger.debug("checkpoint save failed while the runner stopped: %r", saving.exception())

    async def _apply_batch(self, batch: list[StoredEvent], wanted: frozenset[str]) -> None:
        """Apply the handled events of `batch` in order, then commit. The batch is decoded
        in one pass (`codec.decode_stored_many`, about twice as fast as event by event);
        if an event does not decode, the batch is applied event by event instead, which
        stops at that event with its position (ProjectionError), as it always did."""
        handled = [stored for stored in batch if stored.event_type in wanted]
        try:
            events = self.codec.decode_stored_many(handled)
        except DeserializationError:
            for stored in handled:
                await self._apply(stored)
        else:
            for event, stored in zip(events, handled, strict=True):
                await self._handle(event, stored)
        await self.projection.commit()

    async def _apply(self, stored: StoredEvent) -> None:
        try:
            event = self.codec.decode_stored(
                stored.event_id, stored.event_type, stored.schema_version, stored.data, stored.metadata
            )
        except DeserializationError as exc:
            raise ProjectionError(self.name, stored.position, stored.event_type, str(exc)) from exc
        await self._handle(event, stored)

    async def _handle(self, event: DomainEvent, stored: StoredEvent) -> None:
        try:
            await self.projection.apply(event, stored)
        except BrokerUnavailableError:
            raise  # transient: `run` retries the batch
        except Exception as exc:
            raise ProjectionError(
                self.name, stored.position, stored.event_type, f"{type(exc).__name__}: {exc}"
            ) from exc

    async def rebuild(self) -> int:
        """Clear the read models, reset the checkpoint to zero and replay everything."""
        logger.info("rebuilding projection %s from position 0", self.name)
        await self.projection.clear()
        await self.checkpoints.save(self.name, 0)
        return await self.run_until_caught_up()

    async def run(self, *, stop: asyncio.Event | None = None, max_backoff: float = 10.0) -> None:
        """Catch up, then poll every `poll_interval` seconds until `stop` is set or the
        task is cancelled. An unreachable store or checkpoint store is retried with
        back-off; a ProjectionError (a bug or a bad event) ends the loop. While a rebuild
        switches this projection to a new version the runner stands still (see
        `bento.application.projection_switch`), then goes on from the rebuilt checkpoint."""
        plain = self.checkpoints
        aware = SwitchAwareCheckpoints(plain, self.name, self.poll_interval)
        self.checkpoints = aware
        try:
            await poll_until_stopped(
                aware.guard(self.run_until_caught_up),
                stop=stop,
                interval=self.poll_interval,
                max_backoff=max_backoff,
                transient=(BrokerUnavailableError,),
                label=f"projection {self.name}",
            )
        finally:
            self.checkpoints = plain


async def _settle(read: asyncio.Future[list[StoredEvent]]) -> None:
    """Cancel an unneeded read-ahead, and collect its outcome so no error goes unreported
    (the caller is already leaving, with its own result or exception)."""
    if not read.done():
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([read])
    if not read.cancelled() and read.exception() is not None:
        logger.debug("read-ahead failed after the runner stopped: %r", read.exception())
