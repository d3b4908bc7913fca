"""Seed 000 (基础设施高级功能): clients, streaming channels, message queues, the environment
summary block, chained managers and health checks, with the seed's names against real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aio_pika import Message
from seed_events import OrderCreatedEvent
from seed_support import NATS, RABBITMQ, REDIS, until

from bento.infrastructure.container import BentoContainer
from bento.managers.channel import ChannelManager
from bento.managers.clients import RabbitMQClient, RedisClient
from bento.managers.clients.redis import RedisClient as RedisClientFromSubmodule
from bento.managers.events import EventBusManager
from bento.managers.mq import MQManager
from servers import require_tcp

pytestmark = pytest.mark.usefixtures("app_container")


async def first_frame(frames: AsyncIterator[str], publish: Callable[[], Awaitable[None]]) -> str:
    """The first frame of a seed-style SSE generator. It listens only once iterated, and a
    message published before that is not received (at-most-once): publish until one arrives."""
    first = asyncio.ensure_future(anext(frames))
    for _ in range(100):
        await publish()
        done, _ = await asyncio.wait({first}, timeout=0.05)
        if done:
            break
    return await asyncio.wait_for(first, 5)


@pytest.fixture(autouse=True)
def _servers() -> None:
    require_tcp(*REDIS)
    require_tcp(*RABBITMQ)


async def test_redis_client(uid: str, redis_cleanup: list[str]) -> None:
    redis_cleanup.append(f"seed:{uid}:")
    key = f"seed:{uid}:key"
    # 获取实例 (单例模式)
    client = RedisClient.get_instance()  # 默认实例
    cache_client = RedisClient.get_instance("cache")  # 命名实例
    assert client is RedisClient.get_instance() and cache_client is not client
    assert RedisClientFromSubmodule is RedisClient

    # 配置并初始化
    await client.configure(url="redis://localhost:6379/0", max_connections=10, decode_responses=True).initialize()

    # 使用连接
    redis = client.connection
    await redis.set(key, "value")
    value = await redis.get(key)
    assert value == "value"

    # 或使用 execute
    await client.execute("set", key, "value2")
    assert await client.execute("get", key) == "value2"

    # 健康检查
    is_healthy = await client.health_check()
    assert is_healthy is True

    # 清理
    await client.cleanup()
    assert not client.initialized


async def test_rabbitmq_client(uid: str) -> None:
    queue_name = f"test_queue.{uid}"
    # 获取实例
    client = RabbitMQClient.get_instance()
    events_mq = RabbitMQClient.get_instance("events")
    assert events_mq is not client

    # 配置并初始化
    await client.configure(url="amqp://guest:guest@localhost:5672/", heartbeat=60, prefetch_count=10).initialize()

    # 获取通道
    channel = await client.get_channel()
    queue = await channel.declare_queue(queue_name, auto_delete=True)

    # 发布消息
    await channel.default_exchange.publish(Message(body=b"hello"), routing_key=queue_name)

    # 获取新通道 (用于消费者)
    consumer_channel = await client.get_channel(new=True)
    assert consumer_channel is not channel and await client.get_channel() is channel
    consumer_queue = await consumer_channel.get_queue(queue_name)
    received: list[bytes] = []

    async def on_message(message: Any) -> None:
        async with message.process():
            received.append(message.body)

    await consumer_queue.consume(on_message)
    await until(lambda: received == [b"hello"])

    # 健康检查
    assert await client.health_check() is True

    # 清理
    await queue.delete(if_unused=False, if_empty=False)
    await client.cleanup()
    assert await client.health_check() is False


async def test_channel_memory_and_redis_backends(uid: str) -> None:
    # 命名多实例 (推荐)- 不同业务场景使用不同实例
    sse_channel = ChannelManager.get_instance("sse")
    notification_channel = ChannelManager.get_instance("notification")

    # Memory 后端 (单进程)
    await sse_channel.initialize(backend="memory")

    # Redis 后端 (多进程/分布式)- 需要提供 RedisClient
    redis_client = RedisClient.get_instance()
    await redis_client.initialize(url="redis://localhost:6379/0")
    await notification_channel.initialize(backend="redis", redis_client=redis_client)

    for channel in (sse_channel, notification_channel):
        # 订阅指定 Topic
        async def sse_endpoint(user_id: str, channel: ChannelManager = channel) -> AsyncIterator[str]:
            async for message in channel.subscribe(f"user:{user_id}"):
                yield f"data: {json.dumps(message)}\n\n"

        frames = sse_endpoint(f"{uid}-123")

        async def publish(channel: ChannelManager = channel) -> None:
            # 发布消息到指定 Topic
            await channel.publish(f"user:{uid}-123", {"event": "message", "data": "hello"})
            await channel.publish(f"order:{uid}-456", {"status": "shipped"})

        frame = await first_frame(frames, publish)
        body = json.loads(frame.removeprefix("data: "))
        assert body["data"] == {"event": "message", "data": "hello"} and body["channel"] == f"user:{uid}-123"
        await frames.aclose()
    assert await notification_channel.health_check() is True


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_channel_psubscribe(backend: str, uid: str) -> None:
    sse_channel = ChannelManager.get_instance("sse")
    await sse_channel.initialize(backend=backend, url="redis://localhost:6379/0")
    space_id = f"{uid}"

    # 订阅空间下所有事件
    async def stream() -> AsyncIterator[str]:
        async for msg in sse_channel.psubscribe(f"space:{space_id}:*"):
            yield msg.to_sse()  # 自动转换为 SSE 格式

    frames = stream()

    async def warm_up() -> None:
        await sse_channel.publish(f"space:{space_id}:warm_up", {}, event="warm_up")

    await first_frame(frames, warm_up)
    # 后端发布不同类型的事件
    await sse_channel.publish(f"space:{space_id}:file_analyzed", {"file": "a.pdf"}, event="file_analyzed")
    await sse_channel.publish(f"space:{space_id}:comment_added", {"text": "hi"}, event="comment_added")
    await sse_channel.publish("space:other:comment_added", {"text": "not mine"}, event="comment_added")
    received: list[str] = []
    while len(received) < 2:
        frame = await asyncio.wait_for(anext(frames), 5)
        if "event: warm_up" not in frame:
            received.append(frame)
    await frames.aclose()
    assert [f.split("event: ")[1].split("\n")[0] for f in received] == ["file_analyzed", "comment_added"]
    assert 'data: {"file":"a.pdf"}' in received[0]

    # 通配符说明: `?` and `[seq]`
    async with (
        sse_channel.psubscribe(f"room:{uid}:?") as one,
        sse_channel.psubscribe(f"room:{uid}:[ab]") as ab,
    ):
        for name in ("a", "b", "c", "cc"):
            await sse_channel.publish(f"room:{uid}:{name}", {"n": name})
        got_one = [(await one.receive(within=2)).channel for _ in range(3)]  # type: ignore[union-attr]
        got_ab = [(await ab.receive(within=2)).channel for _ in range(2)]  # type: ignore[union-attr]
        assert await one.receive(within=0.2) is None and await ab.receive(within=0.2) is None
    assert got_one == [f"room:{uid}:{c}" for c in "abc"] and got_ab == [f"room:{uid}:{c}" for c in "ab"]


@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
async def test_message_queue(backend: str, uid: str, redis_cleanup: list[str]) -> None:
    queue = f"orders.{uid}"
    redis_cleanup.append(f"mq:{queue}")
    # 获取实例
    mq = MQManager.get_instance()
    orders_mq = MQManager.get_instance("orders")
    assert orders_mq is not mq

    if backend == "redis":  # Redis 后端
        mq.configure(backend="redis", url="redis://localhost:6379/0", max_connections=10, block_ms=100)
    else:  # RabbitMQ 后端
        mq.configure(backend="rabbitmq", url="amqp://guest:guest@localhost:5672/", prefetch_count=10)
    await mq.initialize()

    # 生产者
    await mq.publish(queue=queue, message={"order_id": "123", "action": "created"})
    await mq.publish_batch(
        queue=queue,
        messages=[
            {"order_id": "1", "action": "created"},
            {"order_id": "2", "action": "updated"},
        ],
    )

    # 消费者
    processed: list[str] = []

    async def process_order(message: dict[str, Any]) -> None:
        processed.append(message["order_id"])  # print(f"处理订单: {message['order_id']}")

    consumer = await mq.consume(queue, process_order)
    await until(lambda: sorted(processed) == ["1", "123", "2"])
    await consumer.cancel()

    # 带确认的消费
    attempts: list[str] = []

    async def process_with_ack(message: dict[str, Any], ack: Any, nack: Any) -> None:
        attempts.append(message["order_id"])
        try:
            if attempts.count(message["order_id"]) == 1 and message["order_id"] == "flaky":
                raise ConnectionError("first try fails")
            await process_order(message)
            await ack()
        except Exception:
            await nack(requeue=True)

    await mq.consume(queue, process_with_ack, auto_ack=False)
    await mq.publish(queue, {"order_id": "flaky", "action": "created"})
    await until(lambda: processed.count("flaky") == 1)
    assert attempts.count("flaky") == 2
    assert await mq.health_check() is True
    if backend == "rabbitmq":
        await _delete_queues(queue, f"{queue}.dlq")


async def _delete_queues(*names: str) -> None:
    client = await RabbitMQClient.get_instance("cleanup").initialize(url="amqp://guest:guest@localhost:5672/")
    channel = await client.get_channel()
    for name in names:
        await channel.queue_delete(name)
    await client.cleanup()


async def test_manager_chaining_and_health_checks() -> None:
    # Manager 链式调用
    await ChannelManager.get_instance("sse").initialize(backend="memory")
    await MQManager.get_instance().configure(backend="redis", url="redis://localhost:6379/0").initialize()
    await EventBusManager.get_instance().configure(backend="memory").initialize()
    await RedisClient.get_instance().configure(url="redis://localhost:6379/0").initialize()
    await RabbitMQClient.get_instance().configure(url="amqp://guest:guest@localhost:5672/").initialize()

    # 手动健康检查
    assert await RedisClient.get_instance().health_check()
    assert await RabbitMQClient.get_instance().health_check()
    assert await ChannelManager.get_instance().health_check() is False  # "default" was never initialized
    assert await ChannelManager.get_instance("sse").health_check()
    assert await MQManager.get_instance().health_check()
    assert await EventBusManager.get_instance().health_check()


async def test_environment_summary_block(
    monkeypatch: pytest.MonkeyPatch, app_container: BentoContainer, uid: str, redis_cleanup: list[str]
) -> None:
    require_tcp(*NATS)
    block = """
    CACHE__CACHE_TYPE=redis
    CACHE__URL=redis://localhost:6379/0
    CACHE__SESSION__CACHE_TYPE=redis
    CACHE__SESSION__URL=redis://localhost:6379/2
    CHANNEL__BACKEND=memory
    CHANNEL__DEFAULT__BACKEND=redis
    CHANNEL__DEFAULT__URL=redis://localhost:6379/3
    CHANNEL__DEFAULT__KEY_PREFIX=channel:
    CHANNEL__DEFAULT__TTL=86400
    MQ__BACKEND=redis
    MQ__DEFAULT__URL=redis://localhost:6379/4
    MQ__ORDERS__BACKEND=rabbitmq
    MQ__ORDERS__URL=amqp://guest:guest@localhost:5672/
    EVENT__BACKEND=memory
    EVENT__DEFAULT__BACKEND=redis
    EVENT__DEFAULT__URL=redis://localhost:6379/5
    EVENT__DOMAIN__BACKEND=rabbitmq
    EVENT__DOMAIN__URL=amqp://guest:guest@localhost:5672/
    EVENT__DOMAIN__EXCHANGE_NAME=domain.events
    """
    for line in block.split():
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    # Test hygiene on shared servers, not part of the seed: a namespace of this test's own.
    monkeypatch.setenv("EVENT__DEFAULT__KEY_PREFIX", f"events:{uid}:")
    monkeypatch.setenv("EVENT__DOMAIN__QUEUE_EXPIRES", "60")
    monkeypatch.setenv("SERVICE__NAME", f"seed-env-{uid}")
    redis_cleanup.extend([f"events:{uid}:", f"mq:jobs.{uid}", f"seed:{uid}:"])
    app_container.settings.reset_override()

    session = await RedisClient.get_instance("session").initialize()
    await session.execute("set", f"seed:{uid}:k", "v")
    assert await session.connection.execute_command("CLIENT", "INFO")  # connected
    assert session.connection.connection_pool.connection_kwargs["db"] == 2

    channel = await ChannelManager.get_instance().initialize()
    assert channel.backend == "redis"
    async with channel.subscribe(f"user:{uid}") as subscription:
        await channel.publish(f"user:{uid}", {"hi": 1})
        message = await subscription.receive(within=5)
    assert message is not None and message.data == {"hi": 1}

    default_mq = await MQManager.get_instance().initialize()
    orders_mq = await MQManager.get_instance("orders").initialize()
    assert (default_mq.backend, orders_mq.backend) == ("redis", "rabbitmq")
    jobs: list[str] = []

    async def job(message: dict[str, Any]) -> None:
        jobs.append(message["via"])

    for mq in (default_mq, orders_mq):
        await mq.consume(f"jobs.{uid}", job)
        await mq.publish(f"jobs.{uid}", {"via": mq.backend})
    await until(lambda: sorted(jobs) == ["rabbitmq", "redis"])

    events: list[str] = []
    default_bus = await EventBusManager.get_instance().initialize()
    domain_bus = await EventBusManager.get_instance("domain").initialize()
    assert default_bus.bus is await app_container.message_bus()  # type: ignore[misc]
    for bus in (default_bus, domain_bus):

        @bus.subscribe(OrderCreatedEvent)
        async def on_created(event: OrderCreatedEvent, bus: EventBusManager = bus) -> None:
            events.append(bus.name)

        await bus.publish(OrderCreatedEvent(order_id="1", amount=1.0, user_id="u"))
    await until(lambda: sorted(events) == ["default", "domain"])
    await _delete_queues(f"jobs.{uid}", f"jobs.{uid}.dlq")
