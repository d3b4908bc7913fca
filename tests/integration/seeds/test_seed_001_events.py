"""Seed 001 (事件驱动架构详解): each example that concerns the event bus, with the seed's names,
on its three backends (memory, redis, rabbitmq). The seed's services (notification_service,
email_service …) are recording fakes; everything else is as written."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ValidationError
from seed_events import (
    GoodEvent,
    OrderCreatedEvent,
    OrderProcessingStartedEvent,
    OrderUpdatedEvent,
    PaymentSuccessfulEvent,
    ProductSoldEvent,
    ShippingCompletedEvent,
    ShippingStartedEvent,
    UserActivatedEvent,
    UserRegisteredEvent,
)
from seed_support import until
from tenacity import retry, stop_after_attempt, wait_fixed

from bento.infrastructure.container import BentoContainer
from bento.managers.events import EventBusManager
from bento.managers.events.bus import EventBus

logger = logging.getLogger(__name__)
BACKENDS = ["memory", "redis", "rabbitmq"]


class OrderCreateRequest(BaseModel):
    amount: float
    user_id: str


@dataclass
class Calls:
    """A recording fake of every service the seed's subscribers call."""

    log: list[tuple[str, Any]] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)

    async def record(self, what: str, *args: Any, **kwargs: Any) -> None:
        self.log.append((what, args or kwargs))

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.log)


@pytest.fixture
async def bus(app_container: BentoContainer, event_backend: dict[str, Any]) -> EventBusManager:
    # 代码中配置 (EventBusManager)
    manager = EventBusManager.get_instance()
    manager.configure(**event_backend)
    await manager.initialize()
    legacy = EventBus.get_instance()  # 基础订阅: `EventBus.get_instance()` is the same instance
    assert legacy is manager
    return legacy


def test_event_definitions() -> None:
    created = OrderCreatedEvent(order_id="1", amount=10.0, user_id="u")
    updated = OrderUpdatedEvent(order_id="1", old_status="new", new_status="paid")
    assert created.event_name == "order.created" and updated.event_name == "order.updated"
    assert isinstance(updated.updated_at, datetime)
    with pytest.raises(ValidationError):  # 事件应该是不可变的
        created.amount = 5.0  # type: ignore[misc]
    good = GoodEvent(data={"k": 1})
    with pytest.raises(ValidationError):
        good.data = {}  # type: ignore[misc]


@pytest.mark.parametrize("event_backend", BACKENDS, indirect=True)
async def test_basic_and_multiple_and_conditional_subscribers(bus: EventBusManager) -> None:
    calls = Calls()

    @bus.subscribe(OrderCreatedEvent)
    async def on_order_created(event: OrderCreatedEvent) -> None:
        logger.info(f"订单创建: {event.order_id}, 金额: {event.amount}")
        await calls.record("notify", user_id=event.user_id, title="订单已创建", message=f"订单金额: ¥{event.amount}")

    @bus.subscribe(OrderCreatedEvent)
    async def send_order_email(event: OrderCreatedEvent) -> None:
        await calls.record("email", to=f"{event.user_id}@example.com", subject="订单确认")

    @bus.subscribe(OrderCreatedEvent)
    async def update_statistics(event: OrderCreatedEvent) -> None:
        await calls.record("analytics", event_type="order.created", amount=event.amount)

    @bus.subscribe(OrderCreatedEvent)
    async def trigger_payment(event: OrderCreatedEvent) -> None:
        await calls.record("payment", order_id=event.order_id, amount=event.amount)

    @bus.subscribe(OrderCreatedEvent)
    async def process_high_value_orders(event: OrderCreatedEvent) -> None:
        if event.amount >= 10000:  # 只处理高价值订单
            await calls.record("vip", event.order_id)

    await bus.publish(OrderCreatedEvent(order_id="small", amount=99.0, user_id="u1"))
    await bus.publish(OrderCreatedEvent(order_id="big", amount=20000.0, user_id="u2"))
    await until(lambda: len(calls.log) == 9)
    assert calls.names() == ["analytics"] * 2 + ["email"] * 2 + ["notify"] * 2 + ["payment"] * 2 + ["vip"]
    assert ("vip", ("big",)) in calls.log


@pytest.mark.parametrize("event_backend", BACKENDS, indirect=True)
async def test_publish_from_a_route_and_event_chain(bus: EventBusManager) -> None:
    started: list[str] = []
    router = APIRouter()

    @router.post("/orders")
    async def create_order(request: OrderCreateRequest) -> dict[str, Any]:
        order_id = "o-1"  # order_service.create(request)
        await bus.publish(OrderCreatedEvent(order_id=order_id, amount=request.amount, user_id=request.user_id))
        return {"code": 200, "message": "订单创建成功", "data": {"id": order_id}}

    # 订阅者发布新事件
    @bus.subscribe(OrderCreatedEvent)
    async def on_order_created(event: OrderCreatedEvent) -> None:
        await bus.publish(OrderProcessingStartedEvent(order_id=event.order_id, started_at=datetime.now()))

    @bus.subscribe(OrderProcessingStartedEvent)
    async def on_processing_started(event: OrderProcessingStartedEvent) -> None:
        started.append(event.order_id)

    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://seed") as http:
        response = await http.post("/orders", json={"amount": 12.5, "user_id": "u1"})
    assert response.json()["message"] == "订单创建成功"
    await until(lambda: started == ["o-1"])


@pytest.mark.parametrize("event_backend", BACKENDS, indirect=True)
async def test_common_patterns(bus: EventBusManager) -> None:
    calls = Calls(stock={"p-1": 12})

    # 用户生命周期
    @bus.subscribe(UserRegisteredEvent)
    async def send_welcome_email(event: UserRegisteredEvent) -> None:
        await calls.record("welcome", event.email)

    @bus.subscribe(UserRegisteredEvent)
    async def create_profile(event: UserRegisteredEvent) -> None:
        await calls.record("profile", event.user_id)

    @bus.subscribe(UserActivatedEvent)
    async def award_signup_bonus(event: UserActivatedEvent) -> None:
        await calls.record("points", event.user_id, 100)

    # 订单状态变更
    @bus.subscribe(PaymentSuccessfulEvent)
    async def start_shipping(event: PaymentSuccessfulEvent) -> None:
        await calls.record("shipment", event.order_id)
        await bus.publish(ShippingStartedEvent(order_id=event.order_id))

    @bus.subscribe(ShippingStartedEvent)
    async def shipping_started(event: ShippingStartedEvent) -> None:
        await calls.record("shipping_started", event.order_id)

    @bus.subscribe(ShippingCompletedEvent)
    async def request_review(event: ShippingCompletedEvent) -> None:
        await calls.record("remind_review", event.order_id)

    # 库存管理
    @bus.subscribe(ProductSoldEvent)
    async def update_inventory(event: ProductSoldEvent) -> None:
        calls.stock[event.product_id] -= event.quantity
        await calls.record("inventory", event.product_id)

    await bus.publish(UserRegisteredEvent(user_id="u1", email="u1@example.com"))
    await bus.publish(UserActivatedEvent(user_id="u1"))
    await bus.publish(PaymentSuccessfulEvent(order_id="o-1"))
    await bus.publish(ShippingCompletedEvent(order_id="o-1"))
    await bus.publish(ProductSoldEvent(product_id="p-1", quantity=3))
    expected = ["inventory", "points", "profile", "remind_review", "shipment", "shipping_started", "welcome"]
    await until(lambda: calls.names() == expected)
    assert calls.stock == {"p-1": 9}


@pytest.mark.parametrize("event_backend", BACKENDS, indirect=True)
async def test_error_handling_and_tenacity_retry(bus: EventBusManager) -> None:
    attempts: list[str] = []
    others: list[str] = []

    @bus.subscribe(OrderCreatedEvent)
    async def safe_subscriber(event: OrderCreatedEvent) -> None:
        try:
            raise ConnectionError("external_service is down")
        except Exception as e:
            logger.error(f"处理失败: {e}", exc_info=True)  # 记录错误, 但不阻塞其他订阅者

    @bus.subscribe(OrderCreatedEvent)
    @retry(stop=stop_after_attempt(3), wait=wait_fixed(0.01))  # the seed waits 2 s; same shape
    async def retry_subscriber(event: OrderCreatedEvent) -> None:
        attempts.append(event.order_id)
        if len(attempts) < 3:
            raise ConnectionError("unreliable_service")

    @bus.subscribe(OrderCreatedEvent)
    async def other_subscriber(event: OrderCreatedEvent) -> None:
        others.append(event.order_id)

    await bus.publish(OrderCreatedEvent(order_id="r-1", amount=1.0, user_id="u"))
    await until(lambda: others == ["r-1"] and len(attempts) == 3)


@pytest.mark.parametrize("event_backend", ["memory", "redis"], indirect=True)
async def test_a_raising_subscriber_is_retried_by_the_bus_without_blocking_others(
    bus: EventBusManager,
) -> None:
    failures: list[int] = []
    others: list[str] = []

    @bus.subscribe(OrderCreatedEvent)
    async def flaky(event: OrderCreatedEvent) -> None:
        failures.append(1)
        if len(failures) < 2:
            raise RuntimeError("first delivery fails")

    @bus.subscribe(OrderCreatedEvent)
    async def fast_subscriber(event: OrderCreatedEvent) -> None:
        others.append(event.order_id)

    await bus.publish(OrderCreatedEvent(order_id="x", amount=1.0, user_id="u"))
    await until(lambda: others == ["x"] and len(failures) == 2)
