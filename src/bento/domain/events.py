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
name raise DuplicateMessageTypeError when the second is defined.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from bento.domain.errors import DuplicateMessageTypeError, InvalidMessageDefinitionError
from bento.domain.metadata import BaseMessage


class DomainEvent(BaseMessage):
    """Something that happened in the domain. Subclass it; fields are the payload."""

    __wire_name__: ClassVar[str] = ""
    __schema_version__: ClassVar[int] = 1
    __abstract_event__: ClassVar[bool] = True

    def __init_subclass__(
        cls, *, name: str | None = None, version: int | None = None, abstract: bool = False, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.__abstract_event__ = abstract
        if name is not None:
            cls.__wire_name__ = name
        elif "__wire_name__" not in cls.__dict__:
            cls.__wire_name__ = ""  # resolved in __pydantic_init_subclass__, once fields exist
        if version is not None:
            if version < 1:
                raise InvalidMessageDefinitionError(f"{cls.__qualname__}: schema version must be >= 1")
            cls.__schema_version__ = version

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__abstract_event__:
            return
        if not cls.__wire_name__:
            cls.__wire_name__ = _seed_style_name(cls) or cls.__name__
        _check_unique(cls)

    @property
    def event_name(self) -> str:
        """The wire name (seed 001 spelling)."""
        return type(self).__wire_name__

    @property
    def schema_version(self) -> int:
        return type(self).__schema_version__

    def payload(self) -> dict[str, Any]:
        """Business fields only, as JSON-compatible values."""
        return self.model_dump(mode="json", exclude=set(BaseMessage.ENVELOPE_FIELDS))


#: Seed 000/001 name for the event base class.
Event = DomainEvent


def _seed_style_name(cls: type[DomainEvent]) -> str | None:
    attr = cls.__dict__.get("event_name")
    if not isinstance(attr, property) or attr.fget is None:
        return None
    try:
        value = attr.fget(cls.model_construct())
    except Exception as exc:
        raise InvalidMessageDefinitionError(
            f"{cls.__qualname__}.event_name must return a constant string without reading fields: {exc}"
        ) from exc
    if not isinstance(value, str) or not value:
        raise InvalidMessageDefinitionError(f"{cls.__qualname__}.event_name returned {value!r}, not a name")
    return value


def concrete_event_types() -> Iterator[type[DomainEvent]]:
    """Every live, non-abstract DomainEvent subclass (the class tree is the registry)."""
    stack: list[type[DomainEvent]] = list(DomainEvent.__subclasses__())
    seen: set[type[DomainEvent]] = set()
    while stack:
        klass = stack.pop()
        if klass in seen:
            continue
        seen.add(klass)
        stack.extend(klass.__subclasses__())
        if not klass.__abstract_event__:
            yield klass


def _same_definition(a: type[DomainEvent], b: type[DomainEvent]) -> bool:
    # A module re-executed (reload, a test defining its events in a function) redefines
    # the same class; that is not a clash.
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def _check_unique(new: type[DomainEvent]) -> None:
    for existing in concrete_event_types():
        if existing is new or existing.__wire_name__ != new.__wire_name__:
            continue
        if _same_definition(existing, new):
            continue
        raise DuplicateMessageTypeError(
            new.__wire_name__,
            f"{existing.__module__}.{existing.__qualname__}",
            f"{new.__module__}.{new.__qualname__}",
        )
