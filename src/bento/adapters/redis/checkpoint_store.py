"""RedisCheckpointStore: projection and relay checkpoints in one Redis hash.

`{prefix}checkpoints` maps name -> position; HSET is last-writer-wins, as the port
asks. "Durable" means as durable as the Redis server is configured to be (AOF with
`appendfsync always` for no loss; the default everysec may lose the last second,
after which a projection replays from the older checkpoint, which is safe because
projections are idempotent per position).
"""

from __future__ import annotations

from bento.application.errors import MissingExtraError

try:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis checkpoint store", "redis", "redis") from exc

from bento.adapters.redis.settings import RedisStoreSettings
from bento.application.errors import BrokerUnavailableError

__all__ = ["RedisCheckpointStore", "RedisStoreSettings"]


class RedisCheckpointStore:
    """See the module docstring. `client` shares an existing redis.asyncio client (not closed here)."""

    def __init__(self, settings: RedisStoreSettings | None = None, *, client: Redis | None = None) -> None:
        self.settings = settings or RedisStoreSettings()
        self._owns_client = client is None
        self._client = client or Redis.from_url(self.settings.url.get_secret_value())
        self._key = f"{self.settings.key_prefix}checkpoints"

    async def load(self, name: str) -> int:
        try:
            value = await self._client.hget(self._key, name)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return int(value) if value is not None else 0

    async def save(self, name: str, position: int) -> None:
        try:
            await self._client.hset(self._key, name, str(position))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def all(self) -> dict[str, int]:
        try:
            rows = await self._client.hgetall(self._key)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return {_text(name): int(value) for name, value in rows.items()}

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisCheckpointStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unavailable(exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError("Redis", "checkpoint store", f"{type(exc).__name__}: {exc}")
