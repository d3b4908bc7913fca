"""Orders domain: an Order and a Product's stock, and the events they record."""

from __future__ import annotations

from bento import AggregateRoot, DomainError, DomainEvent, when


class OrderPlaced(DomainEvent, name="orders.order.placed"):
    order_id: str
    customer: str
    sku: str
    quantity: int
    amount: float


class OrderPaid(DomainEvent, name="orders.order.paid"):
    order_id: str
    amount: float


class StockReserved(DomainEvent, name="inventory.stock.reserved"):
    sku: str
    order_id: str
    quantity: int
    remaining: int


class StockRestocked(DomainEvent, name="inventory.stock.restocked"):
    sku: str
    quantity: int


class Order(AggregateRoot):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = "new"
        self.amount = 0.0

    @classmethod
    def place(cls, order_id: str, customer: str, sku: str, quantity: int, unit_price: float) -> Order:
        if quantity <= 0:
            raise DomainError(f"order {order_id}: quantity must be positive, got {quantity}")
        order = cls(order_id)
        order.record(
            OrderPlaced(
                order_id=order_id, customer=customer, sku=sku, quantity=quantity, amount=round(quantity * unit_price, 2)
            )
        )
        return order

    def pay(self, amount: float) -> None:
        if self.status != "placed":
            raise DomainError(f"order {self.id} is {self.status}; only placed orders can be paid")
        if abs(amount - self.amount) > 0.005:
            raise DomainError(f"order {self.id} costs {self.amount:.2f}, not {amount:.2f}")
        self.record(OrderPaid(order_id=self.id, amount=amount))

    @when(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.status, self.amount = "placed", event.amount

    @when(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.status = "paid"


class Product(AggregateRoot):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.stock = 0

    def restock(self, quantity: int) -> None:
        self.record(StockRestocked(sku=self.id, quantity=quantity))

    def reserve(self, order_id: str, quantity: int) -> None:
        if quantity > self.stock:
            raise DomainError(f"product {self.id}: {quantity} wanted, {self.stock} in stock")
        self.record(StockReserved(sku=self.id, order_id=order_id, quantity=quantity, remaining=self.stock - quantity))

    @when(StockRestocked)
    def _restocked(self, event: StockRestocked) -> None:
        self.stock += event.quantity

    @when(StockReserved)
    def _reserved(self, event: StockReserved) -> None:
        self.stock = event.remaining
