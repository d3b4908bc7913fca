"""The named event bus API: `EventBusManager` (named instances), `Event`, and the legacy
name `EventBus` (`EventBus.get_instance()` is `EventBusManager.get_instance()`).

This `EventBus` is the manager's older name; the in-process application bus that handlers register
on is `bento.application.buses.EventBus`."""

from bento.domain.events import DomainEvent, Event
from bento.managers.events.manager import EventBusManager

#: The manager's older name (`from ….events.bus import EventBus` works too).
EventBus = EventBusManager

__all__ = ["DomainEvent", "Event", "EventBus", "EventBusManager"]
