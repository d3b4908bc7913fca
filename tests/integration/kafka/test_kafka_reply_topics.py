"""A remote CommandBus on Kafka deletes its per-process reply topic when it closes (Kafka keeps
topics until they are deleted, so restarts would pile them up). Its own module, so its own
tansu: the contract's consumer groups on the shared broker would make this join rebalance."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient
from kafka_support import kafka_settings

from bento.adapters.kafka import KafkaMessageBus
from bento.application.ports.message_bus import MessageBus
from bento.application.remote import RemoteCommandBus, RequestReply
from bento.testing.contracts.command_bus import ContractGreet


async def test_a_callers_reply_topic_is_deleted_when_it_closes(kafka_url: str) -> None:
    """Kafka keeps topics until they are deleted: each process's reply topic must not outlive it."""
    settings = kafka_settings(kafka_url, topic_prefix=f"rt{uuid.uuid4().hex[:8]}.")

    async def greet(command: ContractGreet) -> str:
        return f"hi {command.who}"

    @asynccontextmanager
    async def connect() -> AsyncIterator[MessageBus]:
        async with KafkaMessageBus(settings) as bus:
            yield bus

    server_link = RequestReply(connect, service="adder", timeout=30.0)
    caller_link = RequestReply(connect, service="caller", timeout=30.0)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers())
    await admin.start()
    try:
        server = RemoteCommandBus(server_link)
        server.register(greet, ContractGreet)
        await server.serve_all()
        assert await RemoteCommandBus(caller_link).dispatch(ContractGreet(who="ann")) == "hi ann"
        reply_topic = settings.topic_prefix + caller_link.reply_topic
        assert reply_topic in await admin.list_topics()
        await caller_link.close()
        assert reply_topic not in await admin.list_topics()
    finally:
        await caller_link.close()
        await server_link.close()
        await admin.close()
