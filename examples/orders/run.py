"""Run the orders demo end to end and report what happened.

Flow: commands → aggregates → event store; the outbox relay publishes stored events
to the message bus; subscribers (each its own subscription) react — one of them
dispatches a command, so an event chain runs through the store again; a projection
builds the order summaries that the queries read. An order for more stock than
exists makes a subscriber fail: it is retried and then dead-lettered, visibly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dependency_injector import providers

from bento.adapters.clickhouse.settings import (
    ClickHouseCheckpointStoreSettings,
    ClickHouseEventStoreSettings,
    ClickHouseReadModelSettings,
    ClickHouseSnapshotStoreSettings,
)
from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.consumers import bind_event_handlers
from bento.application.outbox import OutboxRelay
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.message_bus import DeadLetter, MessageBus
from bento.application.projections import ProjectionRunner
from bento.infrastructure.container import register_handlers, shutdown
from bento.infrastructure.settings import BentoSettings, load_settings
from examples.orders import application as app
from examples.orders.container import OrdersContainer


@dataclass
class DemoReport:
    events: list[str] = field(default_factory=list)
    orders: list[app.OrderSummary] = field(default_factory=list)
    mail: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    correlation_ok: bool = False


def demo_settings(data_dir: str | None = None) -> BentoSettings:
    """Effective settings for the demo: quick retries on the in-process default bus, and
    when the event store is left at its default and chdb is installed (`bento-ddd[embedded]`),
    the embedded ClickHouse engine in `data_dir` for events, read models and checkpoints."""
    settings = load_settings()
    if data_dir is not None and settings.event_store.backend == "memory" and _chdb_available():
        settings = settings.model_copy(update={
            "event_store": ClickHouseEventStoreSettings(),
            "read_model": ClickHouseReadModelSettings(),
            "checkpoint_store": ClickHouseCheckpointStoreSettings(),
            "snapshot_store": ClickHouseSnapshotStoreSettings(),
            "clickhouse": settings.clickhouse.model_copy(update={"mode": "embedded", "path": data_dir}),
        })
    if settings.event_backend == "inprocess":
        fast = settings.default_event.model_copy(update={"max_attempts": 3, "retry_delays": [0.05, 0.1]})
        settings = settings.model_copy(update={"event": {**settings.event, "default": fast}})
    return settings


def _chdb_available() -> bool:
    try:
        import chdb  # noqa: F401
    except ImportError:
        return False
    return True


async def _settle(store: EventStore, relay: OutboxRelay, runner: ProjectionRunner, quiet_rounds: int = 6) -> None:
    """Relay and project until nothing new happens for a few rounds (subscribers may
    append more events, and retries arrive after their back-off)."""
    last, quiet = -1, 0
    while quiet < quiet_rounds:
        await relay.run_until_caught_up()
        await runner.run_until_caught_up()
        await asyncio.sleep(0.05)
        position = await store.last_position()
        quiet = quiet + 1 if position == last else 0
        last = position


async def run_demo(settings: BentoSettings | None = None, say: Callable[[str], Any] = print) -> DemoReport:
    container = OrdersContainer()
    container.settings.override(providers.Object(settings or demo_settings()))
    report = DemoReport()
    try:
        await register_handlers(container)
        commands: CommandBus = container.command_bus()
        queries: QueryBus = container.query_bus()
        events: EventBus = container.event_bus()
        bus: MessageBus = await container.message_bus()
        store: EventStore = await container.event_store()
        checkpoints: CheckpointStore = await container.checkpoint_store()
        projection = await container.summary_projection()  # type: ignore[misc]  # async: it needs a Resource
        say(f"Bento demo: bus={type(bus).__name__}, store={type(store).__name__}")

        subscriptions = await bind_event_handlers(bus, events, service="orders-demo", inbox=await container.inbox())
        relay = OutboxRelay(store, bus, checkpoints, name="orders-demo.outbox")
        runner = ProjectionRunner(projection, store, checkpoints, codec=container.codec())

        await commands.dispatch(app.RestockProduct(sku="tea", quantity=10))
        await commands.dispatch(app.RestockProduct(sku="cup", quantity=2))
        place = app.PlaceOrder(order_id="o-1", customer="ann@example.com", sku="tea", quantity=3, unit_price=4.5)
        await commands.dispatch(place)
        await commands.dispatch(
            app.PlaceOrder(order_id="o-2", customer="bob@example.com", sku="tea", quantity=4, unit_price=4.5)
        )
        await commands.dispatch(
            app.PlaceOrder(order_id="o-3", customer="cy@example.com", sku="cup", quantity=5, unit_price=12.0)
        )
        await commands.dispatch(app.PayOrder(order_id="o-1", amount=13.5))
        await _settle(store, relay, runner)

        everything = await store.read_all(0, 10_000)
        report.events = [f"{e.position:>3} {e.stream:<14} v{e.version} {e.event_type}" for e in everything]
        report.orders = await queries.ask(app.ListOrders())
        report.mail = list(container.mail().sent)
        # A broker keeps dead letters across runs: report only this run's.
        ours = {e.event_id for e in everything}
        for subscription in subscriptions:
            letters = await bus.dead_letters(subscription.topic, group=subscription.group)
            report.dead_letters.extend(letter for letter in letters if letter.message_id in ours)
        placed = next(e for e in everything if e.event_type == "orders.order.placed" and e.stream.endswith("o-1"))
        reserved = [e for e in everything if e.event_type == "inventory.stock.reserved"]
        report.correlation_ok = any(r.correlation_id == place.message_id for r in reserved) and (
            placed.correlation_id == place.message_id
        )

        say("\nEvent store (global order):")
        for line in report.events:
            say(f"  {line}")
        say("\nOrders (query ListOrders over the order_summary projection):")
        for order in report.orders:
            say(f"  {order.id}: {order.customer:<16} {order.quantity} x {order.sku:<4} {order.amount:>6.2f}  "
                f"{order.status:<6} stock reserved: {'yes' if order.stock_reserved else 'no'}")
        say("\nSubscribers sent:")
        for line in report.mail:
            say(f"  {line}")
        say("\nDead-lettered after retries:")
        for letter in report.dead_letters:
            say(f"  {letter.topic} [{letter.group}] after {letter.attempts} attempts: "
                f"{letter.error_type}: {letter.error_message}")
        say(f"\nCorrelation: OrderPlaced and the StockReserved it caused share the PlaceOrder command's "
            f"correlation id: {'yes' if report.correlation_ok else 'NO'}")
        return report
    finally:
        await shutdown(container)
