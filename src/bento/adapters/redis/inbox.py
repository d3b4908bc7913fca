"""RedisInbox: processed message ids in Redis, shared by every process of a consumer.

One key per (consumer, id): `SET {prefix}inbox:{consumer}:{id} 1 NX EX retention`.
NX makes the first mark win atomically across processes; the expiry bounds memory,
so `retention` must outlast any redelivery (dead consumers' entries are reclaimed
within minutes; the default keeps ids for 7 days). `retention=None` keeps them forever.
"""

from __future__ import annotations

from bento.application.errors import MissingExtraError

try:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis inbox", "redis", "redis") from exc

from bento.adapters.redis.settings import RedisStoreSettings
from bento.application.errors import BrokerUnavailableError

__all__ = ["RedisInbox", "RedisStoreSettings"]


class RedisInbox:
    """See the module docstring. `client` shares an existing redis.asyncio client (not closed here)."""

    def __init__(self, settings: RedisStoreSettings | None = None, *, client: Redis | None = None) -> None:
        self.settings = settings or RedisStoreSettings()
        self._owns_client = client is None
        self._client = client or Redis.from_url(self.settings.url.get_secret_value())

    def _key(self, consumer: str, message_id: str) -> str:
        return f"{self.settings.key_prefix}inbox:{consumer}:{message_id}"

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        try:
            return bool(await self._client.exists(self._key(consumer, message_id)))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def mark_processed(self, consumer: str, message_id: str) -> bool:
        try:
            created = await self._client.set(self._key(consumer, message_id), b"1", nx=True, ex=self.settings.retention)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return bool(created)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisInbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _unavailable(exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError("Redis", "inbox", f"{type(exc).__name__}: {exc}")
