"""Domain events: immutable facts with a stable wire name and schema version.

The wire name is what brokers and stores key on, never the Python import path, so a
class can move between modules without orphaning stored events. Three ways to set it,
all at the class definition:

    class OrderPlaced(DomainEvent, name="order.placed", version=2): ...

    class OrderPlaced(DomainEvent):
        __wire_name__ = "order.placed"

    class OrderCreatedEvent(Event):          # seed 001 style
        @property
        def event_name(self) -> str:
            return "order.created"

A class without any of them uses its class name. Two live classes claiming one wire
name raise DuplicateMessageTypeError when the second is defined (the naming rules
are shared with commands and queries: see `bento.domain.wire`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, cast

from bento.domain.wire import WireMessage, concrete_message_types


class DomainEvent(WireMessage, abstract=True):
    """Something that happened in the domain. Subclass it; fields are the payload."""

    __name_property__: ClassVar[str] = "event_name"
    #: Kept for code that asks events specifically (the same flag as `__abstract_message__`).
    __abstract_event__: ClassVar[bool] = True

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(abstract=abstract, **kwargs)
        cls.__abstract_event__ = abstract

    @property
    def event_name(self) -> str:
        """The wire name (seed 001 spelling)."""
        return type(self).__wire_name__

    def payload(self) -> dict[str, Any]:
        """Business fields only, as JSON-compatible values."""
        return self.model_dump(mode="json", exclude=set(WireMessage.ENVELOPE_FIELDS))


#: Seed 000/001 name for the event base class.
Event = DomainEvent


def concrete_event_types() -> Iterator[type[DomainEvent]]:
    """Every live, non-abstract DomainEvent subclass (the class tree is the registry)."""
    return cast(Iterator[type[DomainEvent]], concrete_message_types(DomainEvent))
