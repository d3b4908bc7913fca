"""The orders service in three roles, each hosted by `bento run` (settings choose the broker):

    bento run examples.orders.service:CommandWorker   # command handlers + the event store + relay
    bento run examples.orders.service:ReadWorker      # subscribers, the projection, the queries
    python -m examples.orders.client                   # dispatches commands, asks queries

With COMMAND__BACKEND and EVENT__BACKEND naming the same broker (rabbitmq, redis, nats, pulsar),
a command dispatched by the client runs in CommandWorker, its events reach ReadWorker's
subscribers and projection, and the client's query is answered from ReadWorker's read model.
"""

from __future__ import annotations

from dependency_injector import providers

from bento.application.repository import EventSourcedRepository
from bento.examples.orders import application as app
from bento.examples.orders.domain import Order, Product
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.read_models import read_model


class CommandWorker(BentoContainer):
    """Hosts the command handlers; their events go to the store and the relay publishes them."""

    orders = providers.Singleton(EventSourcedRepository, Order, BentoContainer.event_store, codec=BentoContainer.codec)
    products = providers.Singleton(
        EventSourcedRepository, Product, BentoContainer.event_store, codec=BentoContainer.codec
    )
    place_order = providers.Singleton(app.PlaceOrderHandler, orders)
    pay_order = providers.Singleton(app.PayOrderHandler, orders)
    restock = providers.Singleton(app.RestockProductHandler, products)
    reserve_stock = providers.Singleton(app.ReserveStockHandler, products)


class ReadWorker(BentoContainer):
    """Hosts the subscribers (one consumer group each), the projection and the query handlers."""

    summaries = providers.Resource(read_model, BentoContainer.read_models, app.OrderSummary)
    mail = providers.Singleton(app.Outbox)
    get_order = providers.Singleton(app.GetOrderHandler, summaries)
    list_orders = providers.Singleton(app.ListOrdersHandler, summaries)
    send_confirmation = providers.Singleton(app.SendOrderConfirmation, mail)
    reserve_for_order = providers.Singleton(app.ReserveStockForOrder, BentoContainer.command_bus)
    warn_low_stock = providers.Singleton(app.WarnOnLowStock, mail)
    summary_projection = providers.Singleton(app.OrderSummaryProjection, summaries)


class Client(BentoContainer):
    """Hosts nothing: its command and query buses reach the workers over the broker."""
