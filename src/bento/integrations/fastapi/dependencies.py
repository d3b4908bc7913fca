"""FastAPI dependencies for the container's buses, without dependency-injector wiring.

    async def place(cmd: PlaceOrder, commands: CommandBusDep) -> ...

The container is the one `lifespan` stored on the app (else the application's container from
`bento.managers.runtime`). With wiring, `Depends(Provide[Container.command_bus])` works
as well (docs/fastapi.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from dependency_injector import containers
from fastapi import Depends, Request

from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.ports.message_bus import MessageBus
from bento.infrastructure.container import resolve
from bento.managers import runtime


def container_of(request: Request) -> containers.Container:
    """The container of this app (set by `lifespan`), else the runtime's."""
    container: containers.Container | None = getattr(request.app.state, "bento_container", None)
    return container if container is not None else runtime.get_container()


async def _provided(request: Request, name: str) -> Any:
    return await resolve(getattr(container_of(request), name))


async def get_command_bus(request: Request) -> CommandBus:
    bus: CommandBus = await _provided(request, "command_bus")
    return bus


async def get_query_bus(request: Request) -> QueryBus:
    bus: QueryBus = await _provided(request, "query_bus")
    return bus


async def get_event_bus(request: Request) -> EventBus:
    """The in-process application EventBus (handlers' fan-out)."""
    bus: EventBus = await _provided(request, "event_bus")
    return bus


async def get_message_bus(request: Request) -> MessageBus:
    """The default transport (`EVENT__BACKEND`), opened on first use."""
    bus: MessageBus = await _provided(request, "message_bus")
    return bus


CommandBusDep = Annotated[CommandBus, Depends(get_command_bus)]
QueryBusDep = Annotated[QueryBus, Depends(get_query_bus)]
EventBusDep = Annotated[EventBus, Depends(get_event_bus)]
MessageBusDep = Annotated[MessageBus, Depends(get_message_bus)]
