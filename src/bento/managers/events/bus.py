"""The older import path of the legacy `EventBus` name (the EventBusManager)."""

from bento.managers.events import Event, EventBus, EventBusManager

__all__ = ["Event", "EventBus", "EventBusManager"]
