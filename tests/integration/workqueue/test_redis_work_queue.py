"""RedisWorkQueue against a real Redis: acknowledgement, dead letters, requeue, take-over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bento.adapters.redis.work_queue import RedisWorkQueue, RedisWorkQueueSettings
from bento.application.errors import BusClosedError, PublishError


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def dead_letters(queue: RedisWorkQueue, name: str) -> list[dict[str, Any]]:
    """The queue's dead letters once there are some (settling runs after the handler)."""
    for _ in range(300):
        found = await queue.dead_letters(name)
        if found:
            return found
        await asyncio.sleep(0.01)
    return []


@pytest.fixture
async def wq(wq_redis_url: str, wq_prefix: str) -> AsyncIterator[RedisWorkQueue]:
    settings = RedisWorkQueueSettings(url=wq_redis_url, key_prefix=wq_prefix, block_ms=100)
    async with RedisWorkQueue(settings) as queue:
        yield queue


async def test_messages_are_consumed_once_and_removed(wq: RedisWorkQueue) -> None:
    got: list[dict[str, Any]] = []

    async def handler(message: dict[str, Any]) -> None:
        got.append(message)

    await wq.publish_batch("orders", [{"order_id": str(n)} for n in range(50)])  # before any consumer
    await wq.consume("orders", handler)
    await wq.publish("orders", {"order_id": "50"})
    await until(lambda: len(got) == 51)
    assert sorted(int(m["order_id"]) for m in got) == list(range(51))
    client: Redis = wq.client
    for _ in range(100):  # acknowledged entries are deleted
        if await client.xlen(wq.stream("orders")) == 0:
            break
        await asyncio.sleep(0.01)
    assert await client.xlen(wq.stream("orders")) == 0


async def test_competing_consumers_share_the_work(wq: RedisWorkQueue) -> None:
    seen: list[str] = []

    async def handler(message: dict[str, Any]) -> None:
        seen.append(message["n"])

    first = await wq.consume("jobs", handler)
    second = await wq.consume("jobs", handler)
    await wq.publish_batch("jobs", [{"n": str(n)} for n in range(200)])
    await until(lambda: len(seen) >= 200)
    await asyncio.sleep(0.1)
    assert sorted(seen, key=int) == [str(n) for n in range(200)]  # each exactly once
    assert first.processed > 0 and second.processed > 0
    await first.cancel()
    await second.cancel()


async def test_a_failing_handler_dead_letters_and_the_consumer_goes_on(wq: RedisWorkQueue) -> None:
    done: list[int] = []

    async def handler(message: dict[str, Any]) -> None:
        if message["n"] == 1:
            raise ValueError("bad order")
        done.append(message["n"])

    await wq.consume("orders", handler)
    await wq.publish_batch("orders", [{"n": 0}, {"n": 1}, {"n": 2}])
    await until(lambda: len(done) == 2)
    assert await dead_letters(wq, "orders") == [
        {"message": {"n": 1}, "error_type": "ValueError", "error_message": "bad order"}
    ]


async def test_manual_ack_nack_requeue_and_reject(wq: RedisWorkQueue) -> None:
    attempts: dict[str, int] = {}

    async def handler(message: dict[str, Any], ack: Any, nack: Any) -> None:
        key = message["id"]
        attempts[key] = attempts.get(key, 0) + 1
        if key == "retry" and attempts[key] == 1:
            await nack(requeue=True)
        elif key == "reject":
            await nack(requeue=False)
        else:
            await ack()

    await wq.consume("orders", handler, auto_ack=False)
    await wq.publish_batch("orders", [{"id": "ok"}, {"id": "retry"}, {"id": "reject"}])
    await until(lambda: attempts.get("retry") == 2 and "ok" in attempts and "reject" in attempts)
    await asyncio.sleep(0.1)
    assert attempts == {"ok": 1, "retry": 2, "reject": 1}
    assert [d["message"] for d in await dead_letters(wq, "orders")] == [{"id": "reject"}]


async def test_non_json_bodies_are_dead_lettered(wq: RedisWorkQueue) -> None:
    got: list[Any] = []

    async def handler(message: Any) -> None:
        got.append(message)

    await wq.consume("raw", handler)
    await wq.client.xadd(wq.stream("raw"), {"body": b"{not json"})
    await wq.publish("raw", {"fine": True})
    await until(lambda: got == [{"fine": True}])
    dead = await dead_letters(wq, "raw")
    assert dead[0]["error_type"] == "DeserializationError" and dead[0]["message"] == "{not json"


async def test_entries_of_a_dead_consumer_are_taken_over(wq_redis_url: str, wq_prefix: str) -> None:
    settings = RedisWorkQueueSettings(
        url=wq_redis_url,
        key_prefix=wq_prefix,
        block_ms=50,
        claim_idle_ms=300,
        claim_interval=0.1,
        handler_timeout=0.2,
    )
    async with RedisWorkQueue(settings) as queue:
        stream = queue.stream("orders")
        await queue.client.xgroup_create(stream, settings.group, id="0", mkstream=True)
        await queue.publish_batch("orders", [{"n": n} for n in range(5)])
        # A consumer that read the entries and died before acknowledging them:
        await queue.client.xreadgroup(settings.group, "crashed-worker", {stream: ">"}, count=5)
        got: list[int] = []

        async def handler(message: dict[str, Any]) -> None:
            got.append(message["n"])

        await queue.consume("orders", handler)
        await until(lambda: len(got) == 5, timeout=5.0)
        assert sorted(got) == [0, 1, 2, 3, 4]


async def test_closed_queue_refuses_work_and_bad_data_is_a_publish_error(wq: RedisWorkQueue) -> None:
    with pytest.raises(PublishError, match="JSON"):
        await wq.publish("orders", {"when": object()})
    await wq.close()
    await wq.close()  # idempotent
    with pytest.raises(BusClosedError):
        await wq.publish("orders", {"a": 1})
