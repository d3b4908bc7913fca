"""AggregateRoot: the consistency boundary that turns commands into events.

State changes only by applying events, so the same code path serves new decisions
(`record`) and rebuilding from history (`from_history`). Each event type needs an
applier, declared with `@when(EventType)` or named `apply_<EventClass>` /
`when_<EventClass>`; they are collected once per class, not looked up per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self, TypeVar

from bento.domain.errors import InvalidMessageDefinitionError
from bento.domain.events import DomainEvent

E = TypeVar("E", bound=DomainEvent)
_Applier = Callable[[Any, Any], None]


def when(event_type: type[E]) -> Callable[[Callable[[Any, E], None]], Callable[[Any, E], None]]:
    """Mark an aggregate method as the applier of `event_type`."""

    def mark(method: Callable[[Any, E], None]) -> Callable[[Any, E], None]:
        method.__bento_applies__ = event_type  # type: ignore[attr-defined]
        return method

    return mark


class AggregateRoot:
    """Base class of event-sourced aggregates.

    `version` is the number of events the aggregate has applied (0 = new); a repository
    saves pending events with `expected_version` = the version it loaded.
    """

    aggregate_type: ClassVar[str] = ""
    _appliers: ClassVar[dict[type[DomainEvent], _Applier]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("aggregate_type"):
            cls.aggregate_type = cls.__name__
        appliers: dict[type[DomainEvent], _Applier] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                target = getattr(attr, "__bento_applies__", None)
                if target is not None:
                    appliers[target] = attr
        cls._appliers = appliers

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[DomainEvent] = []

    # -- deciding -------------------------------------------------------------------
    def record(self, event: DomainEvent) -> None:
        """Apply a new event and keep it for the repository to save."""
        if event.metadata.aggregate_id is None:
            event = event.with_metadata(aggregate_id=self.id, aggregate_type=self.aggregate_type)
        self._apply(event)
        self._pending.append(event)

    @property
    def pending_events(self) -> list[DomainEvent]:
        return list(self._pending)

    def collect_events(self) -> list[DomainEvent]:
        """Hand the pending events over (to a repository or publisher) and forget them."""
        events, self._pending = self._pending, []
        return events

    def mark_committed(self) -> None:
        self._pending = []

    # -- rebuilding -----------------------------------------------------------------
    @classmethod
    def from_history(cls, id: str, events: Iterable[DomainEvent]) -> Self:
        """Rebuild an aggregate by replaying its stored events in order.

        The aggregate is created with `cls(id)`, so subclasses keep that signature
        (initial state in `__init__`, everything else from events)."""
        aggregate = cls(id)
        aggregate.replay(events)
        return aggregate

    def replay(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self._apply(event)

    def _apply(self, event: DomainEvent) -> None:
        applier = self._appliers.get(type(event))
        if applier is None:
            applier = self._convention_applier(type(event))
        applier(self, event)
        self.version += 1

    @classmethod
    def _convention_applier(cls, event_type: type[DomainEvent]) -> _Applier:
        for prefix in ("apply_", "when_"):
            method = getattr(cls, prefix + event_type.__name__, None)
            if callable(method):
                applier: _Applier = method
                cls._appliers[event_type] = applier
                return applier
        raise InvalidMessageDefinitionError(
            f"{cls.__name__} has no applier for {event_type.__name__}: add `@when({event_type.__name__})` "
            f"to a method or name one `apply_{event_type.__name__}`"
        )

    # -- snapshots ------------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        """State for a snapshot; override together with `restore_state` to enable snapshots."""
        raise NotImplementedError(f"{type(self).__name__} does not support snapshots")

    def restore_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support snapshots")
