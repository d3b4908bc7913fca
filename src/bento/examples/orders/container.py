"""The orders service's container: BentoContainer plus its repositories and handlers."""

from __future__ import annotations

from dependency_injector import providers

from bento.application.repository import EventSourcedRepository
from bento.examples.orders import application as app
from bento.examples.orders.domain import Order, Product
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.read_models import read_model


class OrdersContainer(BentoContainer):
    orders = providers.Singleton(EventSourcedRepository, Order, BentoContainer.event_store, codec=BentoContainer.codec)
    products = providers.Singleton(
        EventSourcedRepository, Product, BentoContainer.event_store, codec=BentoContainer.codec
    )
    summaries = providers.Resource(read_model, BentoContainer.read_models, app.OrderSummary)
    mail = providers.Singleton(app.Outbox)

    place_order = providers.Singleton(app.PlaceOrderHandler, orders)
    pay_order = providers.Singleton(app.PayOrderHandler, orders)
    restock = providers.Singleton(app.RestockProductHandler, products)
    reserve_stock = providers.Singleton(app.ReserveStockHandler, products)
    get_order = providers.Singleton(app.GetOrderHandler, summaries)
    list_orders = providers.Singleton(app.ListOrdersHandler, summaries)

    send_confirmation = providers.Singleton(app.SendOrderConfirmation, mail)
    reserve_for_order = providers.Singleton(app.ReserveStockForOrder, BentoContainer.command_bus)
    warn_low_stock = providers.Singleton(app.WarnOnLowStock, mail)

    summary_projection = providers.Singleton(app.OrderSummaryProjection, summaries)
