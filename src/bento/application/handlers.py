"""Handler base classes. The message type comes from the type parameter:

    class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
        def __init__(self, orders: OrderRepository) -> None: ...
        async def handle(self, command: PlaceOrder) -> str: ...

Collaborators arrive through `__init__`, so the DI container builds handlers.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Generic, TypeVar

from bento.application.messages import Command, Query
from bento.domain.errors import InvalidMessageDefinitionError
from bento.domain.events import DomainEvent

C = TypeVar("C", bound=Command)
Q = TypeVar("Q", bound=Query)
E = TypeVar("E", bound=DomainEvent)
R = TypeVar("R")


def _message_type_of(cls: type, base: type, expected: type) -> type | None:
    """The concrete first type argument `cls` gives `base`, searching its generic ancestry."""
    for klass in cls.__mro__:
        for orig in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(orig)
            if origin is None or not (isinstance(origin, type) and issubclass(origin, base)):
                continue
            args = typing.get_args(orig)
            if args and isinstance(args[0], type) and issubclass(args[0], expected):
                return args[0]
    return None


class _TypedHandler:
    message_type: ClassVar[type[Any]]
    _base: ClassVar[type]
    _expected: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base = getattr(cls, "_base", None)
        if base is None:  # the three bases themselves, before their class attributes are set
            return
        found = _message_type_of(cls, base, cls._expected)
        if found is not None:
            cls.message_type = found

    @classmethod
    def handled_type(cls) -> type[Any]:
        found = getattr(cls, "message_type", None)
        if found is None:
            raise InvalidMessageDefinitionError(
                f"{cls.__qualname__} does not say which message it handles: subclass "
                f"{cls._base.__name__}[YourMessage, ...] with a concrete message class"
            )
        return typing.cast(type[Any], found)

    @property
    def handler_name(self) -> str:
        return type(self).__qualname__


class CommandHandler(_TypedHandler, Generic[C, R]):
    """Handles one command type; exactly one per type is registered on a CommandBus."""

    async def handle(self, command: C) -> R:
        raise NotImplementedError

    async def __call__(self, command: C) -> R:
        return await self.handle(command)


class QueryHandler(_TypedHandler, Generic[Q, R]):
    """Answers one query type; must not change state."""

    async def handle(self, query: Q) -> R:
        raise NotImplementedError

    async def __call__(self, query: Q) -> R:
        return await self.handle(query)


class EventHandler(_TypedHandler, Generic[E]):
    """Reacts to one event type; any number per type. Must tolerate redelivery."""

    async def handle(self, event: E) -> None:
        raise NotImplementedError

    async def __call__(self, event: E) -> None:
        await self.handle(event)


CommandHandler._base, CommandHandler._expected = CommandHandler, Command
QueryHandler._base, QueryHandler._expected = QueryHandler, Query
EventHandler._base, EventHandler._expected = EventHandler, DomainEvent
