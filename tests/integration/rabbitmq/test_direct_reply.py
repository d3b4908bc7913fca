"""Remote commands on RabbitMQ take their replies by direct reply-to: no reply queue exists, and
after a dropped connection the caller consumes the pseudo-queue again on the re-opened channel
before its next request (RabbitMQ would close a channel that published one first)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from rabbitmq_support import ConnectionDropper, SettingsFactory

from bento import Command, CommandHandler
from bento.adapters.rabbitmq import RabbitMQMessageBus
from bento.application.ports.message_bus import MessageBus
from bento.application.remote import RemoteCommandBus, RequestReply


class Double(Command, name="bento.test.rabbitmq.double"):
    n: int


class DoubleHandler(CommandHandler[Double, int]):
    async def handle(self, command: Double) -> int:
        return 2 * command.n


async def test_dispatch_replies_by_direct_reply_to_across_a_dropped_connection(
    rabbitmq_settings: SettingsFactory, dropper: ConnectionDropper
) -> None:
    settings = rabbitmq_settings()

    @asynccontextmanager
    async def connect() -> AsyncIterator[MessageBus]:
        async with RabbitMQMessageBus(settings) as bus:
            yield bus

    prefix = f"dr{uuid.uuid4().hex[:8]}."
    async with AsyncExitStack() as stack:
        worker_link = RequestReply(connect, service="worker", timeout=10.0, topic_prefix=prefix)
        stack.push_async_callback(worker_link.close)
        worker = RemoteCommandBus(worker_link)
        worker.register(DoubleHandler())
        await worker.serve_all()
        caller_link = RequestReply(connect, service="caller", timeout=10.0, topic_prefix=prefix)
        stack.push_async_callback(caller_link.close)
        caller = RemoteCommandBus(caller_link)
        assert await asyncio.gather(*(caller.dispatch(Double(n=n)) for n in range(20))) == [2 * n for n in range(20)]
        assert caller_link.reply_topic == "amq.rabbitmq.reply-to"  # the broker's route, no queue of ours
        assert await dropper.drop() >= 2  # both processes' connections
        for attempt in range(100):  # the robust connection comes back within a few seconds
            try:
                assert await caller.dispatch(Double(n=21), timeout=2.0) == 42
                break
            except Exception:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.1)
        assert await asyncio.gather(*(caller.dispatch(Double(n=n)) for n in range(20))) == [2 * n for n in range(20)]
