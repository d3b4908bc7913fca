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
from bento.application.ports.event_store import EventFilter, EventStore
from bento.application.ports.message_bus import DeadLetter, MessageBus
from bento.application.projections import ProjectionRunner
from bento.examples.orders import application as app
from bento.examples.orders.container import OrdersContainer
from bento.infrastructure.container import register_handlers, shutdown
from bento.infrastructure.settings import BentoSettings, load_settings

#: The demo's retries: quick, so the deliberate failure reaches the dead-letter path on
#: every broker within the run (the defaults back off for seconds, as a service should).
DEMO_MAX_ATTEMPTS = 3
DEMO_RETRY_DELAYS = [0.05, 0.1]


@dataclass
class DemoReport:
    events: list[str] = field(default_factory=list)
    orders: list[app.OrderSummary] = field(default_factory=list)
    mail: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    correlation_ok: bool = False
    run: int = 1
    order_ids: list[str] = field(default_factory=list)
    subscriptions: list[tuple[str, str | None]] = field(default_factory=list)


def demo_settings(data_dir: str | None = None, *, scope: str | None = None) -> BentoSettings:
    """Effective settings for the demo: quick retries on whichever bus is configured, and
    when the event store is left at its default and chdb is installed (`bento-ddd[embedded]`),
    the embedded ClickHouse engine in `data_dir` for events, read models and checkpoints.
    `scope` names this run's broker resources (exchange, key prefix, stream) so that
    `cleanup_broker` can remove exactly them afterwards."""
    settings = load_settings()
    if data_dir is not None and settings.event_store.backend == "memory" and _chdb_available():
        settings = settings.model_copy(
            update={
                "event_store": ClickHouseEventStoreSettings(),
                "read_model": ClickHouseReadModelSettings(),
                "checkpoint_store": ClickHouseCheckpointStoreSettings(),
                "snapshot_store": ClickHouseSnapshotStoreSettings(),
                "clickhouse": settings.clickhouse.model_copy(update={"mode": "embedded", "path": data_dir}),
            }
        )
    changes: dict[str, Any] = {"max_attempts": DEMO_MAX_ATTEMPTS, "retry_delays": DEMO_RETRY_DELAYS}
    if scope is not None:
        changes.update(scoped_names(settings.event_backend, scope))
    fast = settings.default_event.model_copy(update=changes)
    return settings.model_copy(update={"event": {**settings.event, "default": fast}})


def scoped_names(backend: str, scope: str) -> dict[str, str]:
    """The settings that give one demo run broker resources of its own."""
    return {
        "rabbitmq": {"exchange_name": f"bento-demo.{scope}"},
        "redis": {"key_prefix": f"bento-demo:{scope}:"},
        "nats": {"stream_name": f"BENTO_DEMO_{scope.upper()}", "subject_prefix": f"bento-demo-{scope}"},
    }.get(backend, {})


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


async def _run_number(store: EventStore) -> int:
    """1 on an empty store, n+1 after n earlier runs (each places three orders)."""
    placed = await store.query(EventFilter(event_types=("orders.order.placed",), limit=1_000_000))
    return len(placed) // 3 + 1


async def _await_dead_letters(
    bus: MessageBus, subscriptions: list[Any], ours: set[str], timeout: float
) -> list[DeadLetter]:
    """This run's dead letters; a broker dead-letters after its last retry, so wait a little."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found: list[DeadLetter] = []
        for subscription in subscriptions:
            letters = await bus.dead_letters(subscription.topic, group=subscription.group)
            found.extend(letter for letter in letters if letter.message_id in ours)
        if found or asyncio.get_running_loop().time() >= deadline:
            return found
        await asyncio.sleep(0.1)


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
        projection = await container.summary_projection()  # async: it needs a Resource
        report.run = run = await _run_number(store)
        say(f"Bento demo, run {run}: bus={type(bus).__name__}, store={type(store).__name__}")

        subscriptions = await bind_event_handlers(bus, events, service="orders-demo", inbox=await container.inbox())
        report.subscriptions = [(s.topic, s.group) for s in subscriptions]
        relay = OutboxRelay(store, bus, checkpoints, name="orders-demo.outbox")
        runner = ProjectionRunner(projection, store, checkpoints, codec=container.codec())

        # Fresh ids on every run, so a second run on the same data adds to it instead of colliding.
        first = 3 * (run - 1) + 1
        o1, o2, o3 = (f"o-{n}" for n in range(first, first + 3))
        tea, cup = ("tea", "cup") if run == 1 else (f"tea-{run}", f"cup-{run}")
        report.order_ids = [o1, o2, o3]
        await commands.dispatch(app.RestockProduct(sku=tea, quantity=10))
        await commands.dispatch(app.RestockProduct(sku=cup, quantity=2))
        place = app.PlaceOrder(order_id=o1, customer="ann@example.com", sku=tea, quantity=3, unit_price=4.5)
        await commands.dispatch(place)
        await commands.dispatch(
            app.PlaceOrder(order_id=o2, customer="bob@example.com", sku=tea, quantity=4, unit_price=4.5)
        )
        await commands.dispatch(
            app.PlaceOrder(order_id=o3, customer="cy@example.com", sku=cup, quantity=5, unit_price=12.0)
        )
        await commands.dispatch(app.PayOrder(order_id=o1, amount=13.5))
        await _settle(store, relay, runner)

        everything = await store.read_all(0, 1_000_000)
        mine = [e for e in everything if e.position > 0 and _of_this_run(e.stream, report.order_ids, (tea, cup))]
        report.events = [f"{e.position:>3} {e.stream:<14} v{e.version} {e.event_type}" for e in mine]
        report.orders = [o for o in await queries.ask(app.ListOrders()) if o.id in report.order_ids]
        report.mail = list(container.mail().sent)
        # A broker keeps dead letters across runs: report only this run's.
        ours = {e.event_id for e in mine}
        report.dead_letters = await _await_dead_letters(bus, subscriptions, ours, timeout=10.0)
        await _settle(store, relay, runner, quiet_rounds=2)
        placed = next(e for e in mine if e.event_type == "orders.order.placed" and e.stream == f"Order-{o1}")
        reserved = [e for e in mine if e.event_type == "inventory.stock.reserved"]
        report.correlation_ok = any(r.correlation_id == place.message_id for r in reserved) and (
            placed.correlation_id == place.message_id
        )

        say("\nEvent store (global order):")
        for line in report.events:
            say(f"  {line}")
        say("\nOrders (query ListOrders over the order_summary projection):")
        for order in report.orders:
            say(
                f"  {order.id}: {order.customer:<16} {order.quantity} x {order.sku:<4} {order.amount:>6.2f}  "
                f"{order.status:<6} stock reserved: {'yes' if order.stock_reserved else 'no'}"
            )
        say("\nSubscribers sent:")
        for line in report.mail:
            say(f"  {line}")
        say(f"\nDead-lettered after retries (on purpose: order {o3} wants 5 {cup}, only 2 are in stock):")
        for letter in report.dead_letters:
            say(
                f"  {letter.topic} [{letter.group}] after {letter.attempts} attempts: "
                f"{letter.error_type}: {letter.error_message}"
            )
        if not report.dead_letters:
            say("  none arrived in time (the broker's retries outlasted the demo)")
        say(
            f"\nCorrelation: OrderPlaced and the StockReserved it caused share the PlaceOrder command's "
            f"correlation id: {'yes' if report.correlation_ok else 'NO'}"
        )
        return report
    finally:
        await shutdown(container)


def _of_this_run(stream: str, order_ids: list[str], skus: tuple[str, str]) -> bool:
    return stream in {f"Order-{o}" for o in order_ids} | {f"Product-{s}" for s in skus}
