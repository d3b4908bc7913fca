"""Removing what one demo run created on a broker.

Each run scopes its broker resources by a name of its own (`run.scoped_names`): a RabbitMQ
exchange whose name prefixes every queue, a Redis key prefix, a NATS stream. Afterwards the
demo deletes exactly those, so repeated runs leave no durable queues or stale messages
behind. The message-bus port has no "delete" (a service never deletes its topology), so
this speaks to each broker with its own client. Pulsar topics stay: pulsar-lite has no
admin API, and a real cluster's is HTTP, outside what the demo needs.
"""

from __future__ import annotations

from typing import Any


async def cleanup_broker(settings: Any, subscriptions: list[tuple[str, str | None]]) -> str:
    """Delete the run's resources; returns one line saying what was removed."""
    backend = settings.backend
    if backend == "rabbitmq":
        return await _rabbitmq(settings, subscriptions)
    if backend == "redis":
        return await _redis(settings)
    if backend == "nats":
        return await _nats(settings)
    if backend == "pulsar":
        return "Pulsar topics are kept (pulsar-lite has no admin API); their subscriptions hold nothing unacked"
    return ""


async def _rabbitmq(settings: Any, subscriptions: list[tuple[str, str | None]]) -> str:
    import aio_pika

    from bento.adapters.rabbitmq._topology import dead_letter_queue, retry_name, subscription_queue

    queues = [subscription_queue(settings, topic, group) for topic, group in subscriptions if group is not None]
    queues += [dead_letter_queue(settings, topic, group) for topic, group in subscriptions]
    retries = [retry_name(settings, delay) for delay in settings.retry_delays]
    connection = await aio_pika.connect(settings.url.get_secret_value(), timeout=settings.connect_timeout)
    async with connection:
        channel = await connection.channel()
        for name in [*queues, *retries]:
            await channel.queue_delete(name)
        for name in [*retries, settings.exchange_name]:
            await channel.exchange_delete(name)
    return f"removed the run's RabbitMQ exchange {settings.exchange_name!r} and its {len(queues) + len(retries)} queues"


async def _redis(settings: Any) -> str:
    import redis.asyncio as redis

    client = redis.from_url(settings.url.get_secret_value())
    try:
        keys = [key async for key in client.scan_iter(match=f"{settings.key_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    return f"removed the run's {len(keys)} Redis keys ({settings.key_prefix}*)"


async def _nats(settings: Any) -> str:
    import nats

    client = await nats.connect(servers=settings.server_urls(), connect_timeout=settings.connect_timeout)
    try:
        await client.jetstream().delete_stream(settings.stream_name)
    finally:
        await client.close()
    return f"removed the run's NATS stream {settings.stream_name}"
