"""Orders application: commands, queries, their handlers, subscribers and a projection."""

from __future__ import annotations

from pydantic import BaseModel

from bento import Command, CommandBus, CommandHandler, EventHandler, Query, QueryHandler
from bento.application.ports.event_store import StoredEvent
from bento.application.ports.read_model import ReadModelPort
from bento.application.projections import Projection, handles
from bento.application.repository import EventSourcedRepository
from bento.examples.orders.domain import Order, OrderPaid, OrderPlaced, Product, StockReserved


# -- commands and queries -----------------------------------------------------------------
class PlaceOrder(Command, name="orders.place_order"):
    order_id: str
    customer: str
    sku: str
    quantity: int
    unit_price: float


class PayOrder(Command, name="orders.pay_order"):
    order_id: str
    amount: float


class RestockProduct(Command, name="inventory.restock"):
    sku: str
    quantity: int


class ReserveStock(Command, name="inventory.reserve_stock"):
    sku: str
    order_id: str
    quantity: int


class GetOrder(Query, name="orders.get_order"):
    order_id: str


class ListOrders(Query, name="orders.list_orders"):
    status: str | None = None


class OrderSummary(BaseModel):
    """Read model row, written by OrderSummaryProjection."""

    id: str
    customer: str
    sku: str
    quantity: int
    amount: float
    status: str
    stock_reserved: bool = False


# -- command handlers -----------------------------------------------------------------------
class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: PlaceOrder) -> str:
        order = Order.place(command.order_id, command.customer, command.sku, command.quantity, command.unit_price)
        await self.orders.save(order)
        return order.id


class PayOrderHandler(CommandHandler[PayOrder, None]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: PayOrder) -> None:
        order = await self.orders.load(command.order_id)
        order.pay(command.amount)
        await self.orders.save(order)


class RestockProductHandler(CommandHandler[RestockProduct, int]):
    def __init__(self, products: EventSourcedRepository[Product]) -> None:
        self.products = products

    async def handle(self, command: RestockProduct) -> int:
        product = await self.products.get(command.sku) or Product(command.sku)
        product.restock(command.quantity)
        await self.products.save(product)
        return product.stock


class ReserveStockHandler(CommandHandler[ReserveStock, int]):
    def __init__(self, products: EventSourcedRepository[Product]) -> None:
        self.products = products

    async def handle(self, command: ReserveStock) -> int:
        product = await self.products.load(command.sku)
        product.reserve(command.order_id, command.quantity)
        await self.products.save(product)
        return product.stock


# -- subscribers (each gets its own subscription on the message bus) -------------------------
class Outbox:
    """What the demo's subscribers 'send', so the demo can print it (a fake mail server)."""

    def __init__(self) -> None:
        self.sent: list[str] = []


class SendOrderConfirmation(EventHandler[OrderPlaced]):
    def __init__(self, mail: Outbox) -> None:
        self.mail = mail

    async def handle(self, event: OrderPlaced) -> None:
        self.mail.sent.append(f"to {event.customer}: order {event.order_id} received ({event.amount:.2f})")


class ReserveStockForOrder(EventHandler[OrderPlaced]):
    """Event chain: OrderPlaced -> ReserveStock command -> StockReserved (through the store)."""

    def __init__(self, commands: CommandBus) -> None:
        self.commands = commands

    async def handle(self, event: OrderPlaced) -> None:
        await self.commands.dispatch(ReserveStock(sku=event.sku, order_id=event.order_id, quantity=event.quantity))


class WarnOnLowStock(EventHandler[StockReserved]):
    def __init__(self, mail: Outbox) -> None:
        self.mail = mail

    async def handle(self, event: StockReserved) -> None:
        if event.remaining < 5:
            self.mail.sent.append(f"to warehouse: {event.sku} is low ({event.remaining} left)")


# -- projection and queries ------------------------------------------------------------------
class OrderSummaryProjection(Projection, name="order_summary"):
    def __init__(self, summaries: ReadModelPort[OrderSummary]) -> None:
        self.summaries = self.use(summaries)

    @handles(OrderPlaced)
    async def placed(self, event: OrderPlaced, stored: StoredEvent) -> None:
        await self.summaries.upsert(
            OrderSummary(
                id=event.order_id,
                customer=event.customer,
                sku=event.sku,
                quantity=event.quantity,
                amount=event.amount,
                status="placed",
            ),
            version=stored.position,
        )

    @handles(OrderPaid)
    async def paid(self, event: OrderPaid, stored: StoredEvent) -> None:
        await self._update(event.order_id, stored.position, status="paid")

    @handles(StockReserved)
    async def reserved(self, event: StockReserved, stored: StoredEvent) -> None:
        await self._update(event.order_id, stored.position, stock_reserved=True)

    async def _update(self, order_id: str, position: int, **changes: object) -> None:
        current = await self.summaries.get(order_id)
        if current is not None:
            await self.summaries.upsert(current.model_copy(update=changes), version=position)


# What a remote QueryBus rebuilds the JSON reply into (in-process, the handler's value is returned).
GetOrder.__result_type__ = OrderSummary | None  # type: ignore[attr-defined]
ListOrders.__result_type__ = list[OrderSummary]  # type: ignore[attr-defined]


class GetOrderHandler(QueryHandler[GetOrder, OrderSummary | None]):
    def __init__(self, summaries: ReadModelPort[OrderSummary]) -> None:
        self.summaries = summaries

    async def handle(self, query: GetOrder) -> OrderSummary | None:
        return await self.summaries.get(query.order_id)


class ListOrdersHandler(QueryHandler[ListOrders, list[OrderSummary]]):
    def __init__(self, summaries: ReadModelPort[OrderSummary]) -> None:
        self.summaries = summaries

    async def handle(self, query: ListOrders) -> list[OrderSummary]:
        where = {"status": query.status} if query.status else None
        return await self.summaries.find(where, order_by="id")
