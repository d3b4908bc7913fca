"""Stable wire names and schema versions for every message that crosses a process.

Events, commands and queries all carry one: brokers route on it (a command's topic is its
wire name) and stores key on it, never on the Python import path. Three ways to set it, at
the class definition:

    class PlaceOrder(Command, name="orders.place", version=2): ...
    class PlaceOrder(Command):
        __wire_name__ = "orders.place"
    class PlaceOrder(Command):              # seed style: `event_name`, `command_name`, `query_name`
        @property
        def command_name(self) -> str:
            return "orders.place"

A class without any of them uses its class name. Wire names are unique across every kind of
message (a command and an event of one name would share a topic): two live classes claiming
one name raise DuplicateMessageTypeError when the second is defined.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from bento.domain.errors import DuplicateMessageTypeError, InvalidMessageDefinitionError
from bento.domain.metadata import BaseMessage


class WireMessage(BaseMessage):
    """Base of DomainEvent, Command and Query: a message with a wire name and version."""

    __wire_name__: ClassVar[str] = ""
    __schema_version__: ClassVar[int] = 1
    __abstract_message__: ClassVar[bool] = True
    #: The seed-style property that may name a subclass (`event_name` for events).
    __name_property__: ClassVar[str] = "message_name"

    def __init_subclass__(
        cls, *, name: str | None = None, version: int | None = None, abstract: bool = False, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.__abstract_message__ = abstract
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
        if cls.__abstract_message__:
            return
        if not cls.__wire_name__:
            cls.__wire_name__ = _seed_style_name(cls) or cls.__name__
        _check_unique(cls)

    @property
    def schema_version(self) -> int:
        return type(self).__schema_version__


def _seed_style_name(cls: type[WireMessage]) -> str | None:
    attr = cls.__dict__.get(cls.__name_property__)
    if not isinstance(attr, property) or attr.fget is None:
        return None
    try:
        value = attr.fget(cls.model_construct())
    except Exception as exc:
        raise InvalidMessageDefinitionError(
            f"{cls.__qualname__}.{cls.__name_property__} must return a constant string without reading fields: {exc}"
        ) from exc
    if not isinstance(value, str) or not value:
        raise InvalidMessageDefinitionError(
            f"{cls.__qualname__}.{cls.__name_property__} returned {value!r}, not a name"
        )
    return value


def concrete_message_types(base: type[WireMessage] = WireMessage) -> Iterator[type[WireMessage]]:
    """Every live, non-abstract subclass of `base` (the class tree is the registry)."""
    stack: list[type[WireMessage]] = list(base.__subclasses__())
    seen: set[type[WireMessage]] = set()
    while stack:
        klass = stack.pop()
        if klass in seen:
            continue
        seen.add(klass)
        stack.extend(klass.__subclasses__())
        if not klass.__abstract_message__:
            yield klass


def _same_definition(a: type[WireMessage], b: type[WireMessage]) -> bool:
    # A module re-executed (reload, a test defining its messages in a function) redefines
    # the same class; that is not a clash.
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def _check_unique(new: type[WireMessage]) -> None:
    for existing in concrete_message_types():
        if existing is new or existing.__wire_name__ != new.__wire_name__:
            continue
        if _same_definition(existing, new):
            continue
        raise DuplicateMessageTypeError(
            new.__wire_name__,
            f"{existing.__module__}.{existing.__qualname__}",
            f"{new.__module__}.{new.__qualname__}",
        )
