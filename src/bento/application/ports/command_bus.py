"""CommandBus port: exactly one handler per command type."""

from __future__ import annotations

from typing import Any, Protocol

from bento.application.messages import Command


class CommandBus(Protocol):
    """Runs the one handler registered for the command's type and returns its result;
    HandlerNotFoundError when there is none."""

    async def dispatch(self, command: Command) -> Any: ...
