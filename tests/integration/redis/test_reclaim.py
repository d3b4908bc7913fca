"""Crash safety of durable mode: a killed consumer's pending entries are reclaimed, and a
live consumer's slow entries are not stolen."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event

VICTIM = Path(__file__).with_name("_victim.py")


def _settings(url: str, prefix: str, **extra: object) -> RedisSettings:
    base = {"url": url, "key_prefix": prefix, "block_ms": 200, "claim_idle_ms": 500, "claim_interval": 0.2}
    return RedisSettings.model_validate({**base, **extra})


async def test_killed_consumer_mid_batch_loses_nothing(redis_url: str, key_prefix: str) -> None:
    topic, group, done_key = "orders", "billing", f"{key_prefix}victim-done"
    stream = f"{key_prefix}stream:{topic}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, ["src", os.environ.get("PYTHONPATH")]))}
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        str(VICTIM),
        redis_url,
        key_prefix,
        topic,
        group,
        done_key,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    redis = Redis.from_url(redis_url)
    try:
        assert victim.stdout is not None
        assert (await asyncio.wait_for(victim.stdout.readline(), 30)).strip() == b"ready"
        sent = [make_event(n, key=f"k{n % 7}") for n in range(600)]
        async with RedisMessageBus(_settings(redis_url, key_prefix)) as publisher:
            await publisher.publish_batch(topic, sent)
        # Let it get into its second batch of 50.
        await _until(lambda: _at_least(redis.scard(done_key), 70), within=20)  # type: ignore[arg-type]
        victim.send_signal(signal.SIGKILL)
        await victim.wait()

        pending = await redis.xpending_range(stream, group, "-", "+", 1000)
        assert pending, "the victim died with nothing pending; the test did not hit a batch in flight"
        codec = JsonCodec()
        in_flight = set()
        for row in pending:
            [(_, fields)] = await redis.xrange(stream, row["message_id"], row["message_id"])
            in_flight.add(codec.decode(fields[b"b"]).message_id)
        done_by_victim = {m.decode() for m in await redis.smembers(done_key)}  # type: ignore[misc]

        rescuer = Collector()
        async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
            await bus.subscribe(topic, rescuer, group=group)
            expected = {m.message_id for m in sent}
            await rescuer.wait_until(lambda: rescuer.ids() | done_by_victim >= expected, timeout=30)
            assert in_flight <= rescuer.ids()  # the dead consumer's batch was reclaimed
            await _until(lambda: _nothing_pending(redis, stream, group), within=10)
            assert await bus.dead_letters(topic, group=group) == []
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
        await redis.aclose()


async def test_slow_handler_keeps_its_entries(redis_url: str, key_prefix: str) -> None:
    """Handlers slower than claim_idle_ms are not reclaimed by the other member: the owner
    refreshes its entries, so each message is handled exactly once here."""
    seen: list[str] = []

    async def slow(event: DomainEvent, attempt: int) -> None:
        seen.append(event.message_id)
        await asyncio.sleep(1.2)

    settings = _settings(redis_url, key_prefix, batch_size=2, concurrency=2)
    async with RedisMessageBus(settings) as one, RedisMessageBus(settings) as two:
        first, second = Collector(slow), Collector(slow)
        await one.subscribe("slow", first, group="g")
        await two.subscribe("slow", second, group="g")
        sent = [make_event(n) for n in range(6)]
        await one.publish_batch("slow", sent)
        await first.wait_until(lambda: len(first.ids() | second.ids()) == 6, timeout=20)
        await asyncio.sleep(1.0)
    assert sorted(seen) == sorted(m.message_id for m in sent)  # no duplicates


async def _until(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the condition lives in Redis
            await asyncio.sleep(0.005)


async def _at_least(count: Awaitable[int], minimum: int) -> bool:
    return await count >= minimum


async def _nothing_pending(redis: Redis, stream: str, group: str) -> bool:
    return not (await redis.xpending(stream, group))["pending"]
