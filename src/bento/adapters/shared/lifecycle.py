"""The lifecycle every adapter shares: `async with bus:` and the refusal to work when not open.

Each adapter defines `start()` (idempotent, refused after close) and `close()`
(idempotent); `StartsAndCloses` gives them the context-manager pair once, so no adapter
can forget to close on an exception. `opened` is the one check (and the one wording of
BusClosedError) that every call makes before touching the broker."""

from __future__ import annotations

from types import TracebackType
from typing import Self, TypeVar

from bento.application.errors import BusClosedError

_T = TypeVar("_T")


class StartsAndCloses:
    """Base of the adapters: subclasses implement `start()` and `close()`."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def opened(what: str, action: str, resource: _T | None, *, closed: bool) -> _T:
    """`resource` (the live connection, context or publisher) when the adapter is open, else
    BusClosedError: `cannot <action>: <what> is closed` or `… is not started`."""
    if closed:
        raise BusClosedError(f"cannot {action}: {what} is closed")
    if resource is None:
        raise BusClosedError(f"cannot {action}: {what} is not started (use `async with` or await start())")
    return resource
