"""Seed 000, 事件总线 (Events): configure → initialize → subscribe → publish, on every backend,
with the seed's names (EventBusManager, Event, legacy EventBus)."""

from __future__ import annotations

from typing import Any

import pytest
from seed_events import OrderCreatedEvent
from seed_support import until

from bento.infrastructure.container import BentoContainer
from bento.managers.events import EventBus, EventBusManager

BACKENDS = ["memory", "redis", "redis-broadcast", "rabbitmq", "nats", "pulsar"]


@pytest.mark.parametrize("event_backend", BACKENDS, indirect=True)
async def test_configure_initialize_subscribe_publish(
    app_container: BentoContainer, event_backend: dict[str, Any]
) -> None:
    # 获取实例
    bus = EventBusManager.get_instance()
    domain_bus = EventBusManager.get_instance("domain")
    assert domain_bus is not bus and EventBusManager.get_instance() is bus

    bus.configure(**event_backend)
    await bus.initialize()

    received: list[OrderCreatedEvent] = []

    # 订阅事件
    @bus.subscribe(OrderCreatedEvent)
    async def on_order_created(event: OrderCreatedEvent) -> None:
        received.append(event)

    # 发布事件
    await bus.publish(OrderCreatedEvent(order_id="123", amount=99.99, user_id="user_1"))

    await until(lambda: len(received) == 1)
    event = received[0]
    assert (event.order_id, event.amount, event.user_id, event.event_name) == (
        "123",
        99.99,
        "user_1",
        "order.created",
    )
    assert await EventBusManager.get_instance().health_check() is True


@pytest.mark.parametrize("event_backend", ["memory", "redis"], indirect=True)
async def test_legacy_event_bus_api(app_container: BentoContainer, event_backend: dict[str, Any]) -> None:
    await EventBusManager.get_instance().configure(**event_backend).initialize()  # Manager 链式调用

    bus = EventBus.get_instance()
    assert bus is EventBusManager.get_instance()
    handled: list[str] = []

    @bus.subscribe(OrderCreatedEvent)
    async def handler(event: OrderCreatedEvent) -> None:
        handled.append(event.order_id)

    event = OrderCreatedEvent(order_id="9", amount=1.0, user_id="u")
    await bus.publish(event)
    await until(lambda: handled == ["9"])


async def test_subscribers_declared_before_initialize_are_bound_by_it(app_container: BentoContainer) -> None:
    bus = EventBusManager.get_instance("domain")
    handled: list[str] = []

    @bus.subscribe(OrderCreatedEvent)
    async def on_order_created(event: OrderCreatedEvent) -> None:
        handled.append(event.order_id)

    await bus.configure(backend="memory").initialize()
    await bus.publish(OrderCreatedEvent(order_id="early", amount=2.0, user_id="u"))
    await until(lambda: handled == ["early"])
