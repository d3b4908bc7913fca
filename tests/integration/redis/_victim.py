"""A consumer process the reclaim test kills with SIGKILL in the middle of a batch.

Usage: python _victim.py URL PREFIX TOPIC GROUP DONE_KEY. It records each handled
message id in the Redis set DONE_KEY (before the batch is acknowledged) and prints
"ready" once subscribed."""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.domain.events import DomainEvent
from bento.testing import events  # noqa: F401 - registers the contract event types


async def main(url: str, prefix: str, topic: str, group: str, done_key: str) -> None:
    recorder = Redis.from_url(url)
    settings = RedisSettings.model_validate({"url": url, "key_prefix": prefix, "batch_size": 50, "block_ms": 200})
    async with RedisMessageBus(settings) as bus:

        async def slow(event: DomainEvent) -> None:
            await recorder.sadd(done_key, event.message_id)  # type: ignore[misc]
            await asyncio.sleep(0.01)

        await bus.subscribe(topic, slow, group=group)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
