"""`lifespan(container)`: what a FastAPI app runs at startup and shutdown.

Startup: the container becomes the application's (`request.app.state.bento_container`, and the
one the named managers use), its modules are wired for `Depends(Provide[...])`, handlers are
registered on the buses, the providers named in `start` are opened (so a broker that is down
fails the boot, not the first request) and `on_startup` hooks run. Shutdown, in reverse:
`on_shutdown` hooks, the named instances (managers) are cleaned up, then
`await container.shutdown_resources()` closes every Resource that was opened, and the modules
are unwired. Shutdown runs even when startup failed halfway.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import ModuleType
from typing import Any

from dependency_injector import containers
from fastapi import FastAPI

from bento.infrastructure.container import register_handlers, resolve
from bento.integrations.fastapi.shutdown import watch_exit_signals
from bento.managers import runtime

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]


def lifespan(
    container: containers.Container,
    *,
    modules: Iterable[ModuleType | str] = (),
    packages: Iterable[ModuleType | str] = (),
    register: bool = True,
    start: Sequence[str] = ("message_bus",),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The `lifespan=` argument of `FastAPI(...)`; see the module docstring."""
    modules, packages = list(modules), list(packages)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        app.state.bento_container = container
        runtime.use_container(container)
        wired = bool(modules or packages)
        if wired:
            container.wire(modules=modules or None, packages=packages or None)
        with watch_exit_signals():  # SSE streams end on Ctrl-C, before uvicorn waits for them
            async with _opened(container, register, start, on_startup, on_shutdown, wired):
                yield

    return run


@asynccontextmanager
async def _opened(
    container: containers.Container,
    register: bool,
    start: Sequence[str],
    on_startup: Sequence[Hook],
    on_shutdown: Sequence[Hook],
    wired: bool,
) -> AsyncIterator[None]:
    """Register, start and run the hooks; undo it all in reverse on exit."""
    try:
        if register:
            await register_handlers(container)
        for name in start:
            await resolve(getattr(container, name))
        for hook in on_startup:
            await hook()
        yield
    finally:
        try:
            for hook in reversed(on_shutdown):
                await hook()
        finally:
            try:
                await runtime.shutdown(container)
            finally:
                if wired:
                    container.unwire()
