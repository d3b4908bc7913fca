"""RedisClient: a named Redis connection (`CACHE__{NAME}__URL`), a façade over the container.

    client = RedisClient.get_instance("cache")
    await client.configure(url="redis://localhost:6379/0", decode_responses=True).initialize()
    await client.connection.set("key", "value")      # the redis.asyncio client itself
    await client.execute("set", "key", "value")       # driver errors translated
    await client.health_check(); await client.cleanup()

Defaults come from the `cache` section instance of the same name (`url`, `max_connections`);
`configure(...)` (or `initialize(url=...)`) overrides them. Other keyword options go to
`redis.asyncio.Redis.from_url` unchanged (e.g. `socket_timeout`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from bento.application.credentials import mask_url
from bento.application.errors import BrokerUnavailableError, MissingExtraError
from bento.application.ports.capabilities import HealthStatus
from bento.domain.errors import BentoError
from bento.infrastructure.settings import CacheSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade, timed_check

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)


class RedisCommandError(BentoError):
    """Redis answered a command with an error (wrong type, unknown command …)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"Redis command {command!r} failed: {reason}")
        self.command, self.reason = command, reason


class RedisClient(NamedFacade):
    """See the module docstring."""

    kind = "RedisClient"
    close_order = 90

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._client: Redis | None = None
        self._url = ""

    @property
    def initialized(self) -> bool:
        return self._client is not None

    @property
    def url(self) -> str:
        """The URL this client connected to (with credentials; never log it)."""
        if self._client is None:
            raise self._not_initialized()
        return self._url

    def _options(self, extra: dict[str, Any]) -> dict[str, Any]:
        base = self.settings.cache.get(self.name) or CacheSettings()
        options: dict[str, Any] = {
            "url": base.url.get_secret_value(),
            "max_connections": base.max_connections,
        }
        options.update(self._overrides)
        options.update({k: v for k, v in extra.items() if v is not None})
        return options

    async def initialize(self, url: str | None = None, **options: Any) -> Self:
        """Connect and PING (BrokerUnavailableError if Redis does not answer). Idempotent:
        an initialized client stays as it is until `cleanup()`."""
        if self._client is not None:
            return self
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise MissingExtraError("RedisClient", "redis", "redis") from exc
        settings = self._options({"url": url, **options})
        target = str(settings.pop("url"))
        client = Redis.from_url(target, **settings)
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise BrokerUnavailableError("Redis", mask_url(target), f"{type(exc).__name__}: {exc}") from exc
        self._client, self._url = client, target
        await runtime.track(self._container)
        return self

    @property
    def connection(self) -> Redis:
        """The `redis.asyncio.Redis` client (a connection pool)."""
        if self._client is None:
            raise self._not_initialized()
        return self._client

    async def execute(self, command: str, *args: Any, **options: Any) -> Any:
        """Run one Redis command; connection failures raise BrokerUnavailableError and error
        replies RedisCommandError, never a redis-py exception."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        client = self.connection
        try:
            return await client.execute_command(command, *args, **options)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BrokerUnavailableError("Redis", mask_url(self._url), f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise RedisCommandError(command, f"{type(exc).__name__}: {exc}") from exc

    async def health(self) -> HealthStatus:
        component = f"redis:{self.name}"
        if self._client is None:
            return HealthStatus(False, component, detail="not initialized")
        return await timed_check(component, self._client.ping)

    async def cleanup(self) -> None:
        """Close the connection pool (idempotent); `initialize()` may be called again."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
