"""Named event-bus instances (`EVENT__{NAME}__…`), opened on first use through the catalogue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING

from bento.application.errors import ConfigurationError
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec
from bento.infrastructure.backends import MESSAGE_BUSES

if TYPE_CHECKING:
    from bento.infrastructure.settings import EventBusSettings


def open_message_bus(
    settings: EventBusSettings, codec: JsonCodec | None = None
) -> AbstractAsyncContextManager[MessageBus]:
    """Open the bus one settings instance describes (named instances, the managers, the CLI)."""
    opened: AbstractAsyncContextManager[MessageBus] = MESSAGE_BUSES.open(settings, codec=codec or JsonCodec())
    return opened


class NamedMessageBuses:
    """Every named instance, each opened on first use and closed together. The container holds
    one; the managers look buses up here."""

    def __init__(self, instances: dict[str, EventBusSettings], codec: JsonCodec) -> None:
        self._instances, self._codec = instances, codec
        self._open: dict[str, MessageBus] = {}
        self._stack = AsyncExitStack()

    @property
    def names(self) -> list[str]:
        return sorted(self._instances)

    async def get(self, name: str = "default") -> MessageBus:
        key = name.lower()
        if key not in self._open:
            if key not in self._instances:
                raise ConfigurationError(
                    [f"no event bus instance {name!r}; set EVENT__{name.upper()}__BACKEND (have: {self.names})"]
                )
            self._open[key] = await self._stack.enter_async_context(open_message_bus(self._instances[key], self._codec))
        return self._open[key]

    def opened(self) -> dict[str, MessageBus]:
        return dict(self._open)

    async def close(self) -> None:
        await self._stack.aclose()
        self._open.clear()


async def named_message_buses(
    instances: dict[str, EventBusSettings], codec: JsonCodec
) -> AsyncIterator[NamedMessageBuses]:
    buses = NamedMessageBuses(instances, codec)
    try:
        yield buses
    finally:
        await buses.close()
