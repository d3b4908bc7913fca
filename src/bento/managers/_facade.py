"""NamedFacade: what every named manager shares (lookup by name, chainable configure).

A façade is created once per (kind, name) and cached in the container's registry (see
`runtime`), so `RedisClient.get_instance("cache")` returns the same object until the
application switches containers. Settings come from the container's BentoSettings
(`CACHE__…`, `CHANNEL__…`, `MQ__…`, `EVENT__…`); `configure(...)` overrides them in code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Self, cast

from dependency_injector import containers

from bento.application.ports.capabilities import HealthStatus
from bento.infrastructure.settings import BentoSettings
from bento.managers import runtime

DEFAULT_HEALTH_TIMEOUT = 5.0


class NamedFacade:
    """Base of RedisClient, RabbitMQClient, ChannelManager, MQManager and EventBusManager."""

    kind: ClassVar[str] = "component"
    #: Lower closes first: buses and queues before the clients they may share.
    close_order: ClassVar[int] = 50

    def __init__(self, name: str, container: containers.Container) -> None:
        self.name = name
        self._container = container
        self._overrides: dict[str, Any] = {}

    @classmethod
    def get_instance(cls, name: str = "default") -> Self:
        """The named instance of the application's container (created on first use)."""
        container = runtime.get_container()
        found = runtime.registry_of(container).get(cls.kind, name, lambda: cls(name.lower(), container))
        return cast(Self, found)

    def configure(self, **options: Any) -> Self:
        """Override settings in code (None values are ignored); returns self for chaining.
        Takes effect at the next `initialize()`."""
        self._overrides.update({key: value for key, value in options.items() if value is not None})
        return self

    def rebind(self, container: containers.Container) -> None:
        self._container = container

    @property
    def settings(self) -> BentoSettings:
        settings: BentoSettings = self._container.settings()
        return settings

    @property
    def initialized(self) -> bool:
        raise NotImplementedError

    def _not_initialized(self) -> runtime.NotInitializedError:
        return runtime.NotInitializedError(type(self).__name__, self.name)

    async def health(self) -> HealthStatus:
        """A real round trip to the backend, with its latency (the /api/health entry)."""
        raise NotImplementedError

    async def health_check(self) -> bool:
        """True when the backend answered (the boolean form of `health()`)."""
        return (await self.health()).healthy

    async def cleanup(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "initialized" if self.initialized else "not initialized"
        return f"<{type(self).__name__} {self.name!r} {state}>"


async def timed_check(
    component: str, probe: Callable[[], Awaitable[object]], timeout: float = DEFAULT_HEALTH_TIMEOUT
) -> HealthStatus:
    """Run `probe` within `timeout`; any failure is an unhealthy status naming the error."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await probe()
    except TimeoutError:
        return HealthStatus(False, component, (time.perf_counter() - started) * 1000, f"no answer in {timeout}s")
    except Exception as exc:  # a health check reports failures, it does not raise them
        return HealthStatus(False, component, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")
    return HealthStatus(True, component, (time.perf_counter() - started) * 1000)
