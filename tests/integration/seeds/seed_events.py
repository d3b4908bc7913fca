"""The event classes of seeds 000 and 001, defined once (two classes with one wire name is an
error), in the seed's own style: `Event` plus an `event_name` property."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from bento.managers.events import Event


class OrderCreatedEvent(Event):
    """订单创建事件"""

    order_id: str
    amount: float
    user_id: str

    @property
    def event_name(self) -> str:
        return "order.created"


class OrderUpdatedEvent(Event):
    """订单更新事件"""

    order_id: str
    old_status: str
    new_status: str
    updated_at: datetime = Field(default_factory=datetime.now)

    @property
    def event_name(self) -> str:
        return "order.updated"


class OrderProcessingStartedEvent(Event):
    order_id: str
    started_at: datetime = Field(default_factory=datetime.now)

    @property
    def event_name(self) -> str:
        return "order.processing_started"


class UserRegisteredEvent(Event):
    user_id: str
    email: str

    @property
    def event_name(self) -> str:
        return "user.registered"


class UserActivatedEvent(Event):
    user_id: str

    @property
    def event_name(self) -> str:
        return "user.activated"


class PaymentSuccessfulEvent(Event):
    order_id: str

    @property
    def event_name(self) -> str:
        return "payment.successful"


class ShippingStartedEvent(Event):
    order_id: str

    @property
    def event_name(self) -> str:
        return "shipping.started"


class ShippingCompletedEvent(Event):
    order_id: str

    @property
    def event_name(self) -> str:
        return "shipping.completed"


class ProductSoldEvent(Event):
    product_id: str
    quantity: int

    @property
    def event_name(self) -> str:
        return "product.sold"


class GoodEvent(Event):
    data: dict[str, object] = Field(frozen=True)

    @property
    def event_name(self) -> str:
        return "good.event"
