"""WorkQueueContract. Subclasses provide `work_queue` and `other_work_queue` fixtures: two
started WorkQueues on the same broker and namespace (two processes' worth of consumers),
with the default dead-letter suffix `.dlq`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bento.application.ports.work_queue import WorkQueue


def _queue() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within {timeout}s")


class WorkQueueContract:
    async def test_messages_published_before_and_after_consume_are_each_handled_once(
        self, work_queue: WorkQueue
    ) -> None:
        queue, got = _queue(), list[int]()

        async def handler(message: dict[str, Any]) -> None:
            got.append(message["n"])

        await work_queue.publish_batch(queue, [{"n": n} for n in range(20)])  # kept until a consumer comes
        await work_queue.consume(queue, handler)
        await work_queue.publish(queue, {"n": 20})
        await _until(lambda: len(got) >= 21)
        await asyncio.sleep(0.2)  # nothing arrives twice
        assert sorted(got) == list(range(21))

    async def test_competing_consumers_share_the_work(self, work_queue: WorkQueue, other_work_queue: WorkQueue) -> None:
        queue = _queue()
        first: list[int] = []
        second: list[int] = []

        def collect(into: list[int]) -> Callable[[dict[str, Any]], Awaitable[None]]:
            async def handler(message: dict[str, Any]) -> None:
                into.append(message["n"])
                await asyncio.sleep(0.002)

            return handler

        await work_queue.consume(queue, collect(first))
        await other_work_queue.consume(queue, collect(second))
        await work_queue.publish_batch(queue, [{"n": n} for n in range(100)])
        await _until(lambda: len(first) + len(second) >= 100)
        await asyncio.sleep(0.2)
        assert sorted(first + second) == list(range(100))
        assert first and second, "both consumers should get a share"

    async def test_nack_with_requeue_delivers_the_message_again(self, work_queue: WorkQueue) -> None:
        queue, attempts = _queue(), list[int]()

        async def handler(message: dict[str, Any], ack: Any, nack: Any) -> None:
            attempts.append(message["n"])
            if len(attempts) == 1:
                await nack(requeue=True)
            else:
                await ack()

        await work_queue.consume(queue, handler, auto_ack=False)
        await work_queue.publish(queue, {"n": 7})
        await _until(lambda: len(attempts) >= 2)
        await asyncio.sleep(0.2)  # acknowledged the second time: no third delivery
        assert attempts == [7, 7]

    async def test_a_failing_handler_dead_letters_the_message_and_the_consumer_goes_on(
        self, work_queue: WorkQueue
    ) -> None:
        queue, handled, dead = _queue(), list[int](), list[int]()

        async def handler(message: dict[str, Any]) -> None:
            handled.append(message["n"])
            if message["n"] == 0:
                raise RuntimeError("cannot handle 0")

        async def dead_letters(message: dict[str, Any]) -> None:
            dead.append(message["n"])

        await work_queue.consume(queue, handler)
        await work_queue.consume(f"{queue}.dlq", dead_letters)
        await work_queue.publish_batch(queue, [{"n": n} for n in range(5)])
        await _until(lambda: len(handled) >= 5 and len(dead) >= 1)
        await asyncio.sleep(0.2)
        assert sorted(handled) == [0, 1, 2, 3, 4]  # the failure was not retried forever
        assert dead == [0]

    async def test_health_check_answers(self, work_queue: WorkQueue) -> None:
        assert (await work_queue.health_check()).healthy
