"""EventSourcedRepository on the in-memory store and snapshot store."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import pytest

from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.memory.snapshot_store import InMemorySnapshotStore
from bento.application.errors import ConcurrencyError, DeserializationError
from bento.application.ports.snapshot_store import Snapshot
from bento.application.repository import AggregateNotFoundError, EventSourcedRepository
from bento.application.serialization import EncodedEvent, JsonCodec, MessageRegistry
from bento.domain.aggregate import AggregateRoot, when
from bento.domain.events import DomainEvent


class CartOpened(DomainEvent, name="test.repo.cart_opened"):
    owner: str


class ItemAdded(DomainEvent, name="test.repo.item_added", version=2):
    sku: str
    quantity: int  # version 1 had no quantity: one item per event


class Cart(AggregateRoot):
    aggregate_type = "Cart"
    snapshot_version: ClassVar[int] = 1

    owner: str
    items: dict[str, int]

    @classmethod
    def open(cls, id: str, owner: str) -> Cart:
        cart = cls.from_history(id, ())
        cart.record(CartOpened(owner=owner))
        return cart

    def add(self, sku: str, quantity: int = 1) -> None:
        self.record(ItemAdded(sku=sku, quantity=quantity))

    @when(CartOpened)
    def _opened(self, event: CartOpened) -> None:
        self.owner, self.items = event.owner, {}

    @when(ItemAdded)
    def _added(self, event: ItemAdded) -> None:
        self.items[event.sku] = self.items.get(event.sku, 0) + event.quantity

    def snapshot_state(self) -> dict[str, Any]:
        return {"owner": self.owner, "items": dict(self.items)}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.owner, self.items = state["owner"], dict(state["items"])


class CountingStore(InMemoryEventStore):
    """Counts events handed out by read_stream, to see what a snapshot saved."""

    def __init__(self) -> None:
        super().__init__()
        self.events_read = 0
        self.reads = 0

    async def read_stream(self, stream: str, from_version: int = 0) -> list[Any]:
        events = await super().read_stream(stream, from_version)
        self.events_read += len(events)
        self.reads += 1
        return events


async def test_save_then_load_rebuilds_the_aggregate() -> None:
    repo = EventSourcedRepository(Cart, InMemoryEventStore())
    cart = Cart.open("c1", "ann")
    cart.add("apple", 2)
    cart.add("pear")
    assert await repo.save(cart) == 3
    assert cart.pending_events == [] and cart.version == 3
    loaded = await repo.load("c1")
    assert (loaded.owner, loaded.items, loaded.version) == ("ann", {"apple": 2, "pear": 1}, 3)
    assert repo.stream_for("c1") == "Cart-c1"
    assert await repo.exists("c1") and not await repo.exists("c2")


async def test_missing_aggregate() -> None:
    repo = EventSourcedRepository(Cart, InMemoryEventStore())
    assert await repo.get("nope") is None
    with pytest.raises(AggregateNotFoundError) as caught:
        await repo.load("nope")
    assert caught.value.stream == "Cart-nope"


async def test_concurrent_save_raises_and_keeps_pending_events() -> None:
    repo = EventSourcedRepository(Cart, InMemoryEventStore())
    await repo.save(Cart.open("c1", "ann"))
    first, second = await repo.load("c1"), await repo.load("c1")
    first.add("apple")
    second.add("pear")
    await repo.save(first)
    with pytest.raises(ConcurrencyError) as caught:
        await repo.save(second)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert len(second.pending_events) == 1
    retry = await repo.load("c1")
    retry.add("pear")
    assert await repo.save(retry) == 3


async def test_snapshots_every_n_events_shorten_the_replay() -> None:
    store, snapshots = CountingStore(), InMemorySnapshotStore()
    # No aggregate cache: this test counts what a load from a snapshot reads.
    repo = EventSourcedRepository(Cart, store, snapshots=snapshots, snapshot_every=10, cache_size=0)
    cart = Cart.open("c1", "ann")
    await repo.save(cart)
    for n in range(24):
        cart.add(f"sku-{n % 3}")
        await repo.save(cart)
    snapshot = await snapshots.load("Cart-c1")
    assert snapshot is not None and snapshot.version == 20 and snapshot.aggregate_type == "Cart"
    store.events_read = 0
    loaded = await repo.load("c1")
    assert store.events_read == 5  # versions 21..25 only
    assert loaded.version == 25 and loaded.items == {"sku-0": 8, "sku-1": 8, "sku-2": 8}
    full = await EventSourcedRepository(Cart, store).load("c1")
    assert (full.items, full.version) == (loaded.items, loaded.version)


async def test_a_batch_crossing_a_boundary_snapshots_once() -> None:
    snapshots = InMemorySnapshotStore()
    repo = EventSourcedRepository(Cart, InMemoryEventStore(), snapshots=snapshots, snapshot_every=3)
    cart = Cart.open("c1", "ann")
    for n in range(6):
        cart.add(f"s{n}")
    await repo.save(cart)  # 1 -> 7 crosses 3 and 6: one snapshot at 7
    snapshot = await snapshots.load("Cart-c1")
    assert snapshot is not None and snapshot.version == 7


async def test_snapshot_of_another_schema_version_is_ignored() -> None:
    store, snapshots = InMemoryEventStore(), InMemorySnapshotStore()
    repo = EventSourcedRepository(Cart, store, snapshots=snapshots, snapshot_every=1)
    cart = Cart.open("c1", "ann")
    cart.add("apple")
    await repo.save(cart)
    await snapshots.save(Snapshot("Cart-c1", 2, {"owner": "WRONG", "items": {}}, schema_version=99))
    loaded = await repo.load("c1")
    assert loaded.owner == "ann" and loaded.items == {"apple": 1}


class ReleaseOneCodec(JsonCodec):
    """Writes ItemAdded as an older release did: schema version 1, no quantity."""

    def encode_for_store(self, event: DomainEvent, *, aggregate_type: str = "") -> EncodedEvent:
        encoded = super().encode_for_store(event, aggregate_type=aggregate_type)
        if encoded.event_type != "test.repo.item_added":
            return encoded
        data = {k: v for k, v in json.loads(encoded.data).items() if k != "quantity"}
        return dataclasses.replace(encoded, schema_version=1, data=json.dumps(data))


async def test_upcasters_run_on_stored_events_of_an_old_schema_version() -> None:
    store = InMemoryEventStore(codec=ReleaseOneCodec())
    await EventSourcedRepository(Cart, store).save(Cart.open("c1", "ann"))
    await store.append("Cart-c1", [ItemAdded(sku="apple", quantity=1)], 1)
    assert (await store.read_stream("Cart-c1"))[-1].schema_version == 1

    with pytest.raises(DeserializationError, match="no upcaster"):
        await EventSourcedRepository(Cart, store).load("c1")

    registry = MessageRegistry()
    registry.add_upcaster("test.repo.item_added", 1, lambda data: {**data, "quantity": 1})
    loaded = await EventSourcedRepository(Cart, store, codec=JsonCodec(registry)).load("c1")
    assert loaded.items == {"apple": 1} and loaded.version == 2


def test_snapshot_settings_are_checked() -> None:
    class Plain(AggregateRoot):
        pass

    with pytest.raises(ValueError, match="SnapshotStore"):
        EventSourcedRepository(Cart, InMemoryEventStore(), snapshot_every=5)
    with pytest.raises(ValueError, match="snapshot_state"):
        EventSourcedRepository(Plain, InMemoryEventStore(), snapshots=InMemorySnapshotStore(), snapshot_every=5)


# -- the aggregate cache -------------------------------------------------------------------
class UnprovingStore(CountingStore):
    """A store that never vouches for a version (like one whose lock lives elsewhere)."""

    async def known_version(self, stream: str) -> int | None:
        return None


async def test_a_saved_aggregate_is_loaded_again_without_a_read() -> None:
    store = CountingStore()
    repo = EventSourcedRepository(Cart, store)
    cart = Cart.open("c1", "ann")
    cart.add("apple")
    await repo.save(cart)
    store.events_read = 0
    loaded = await repo.load("c1")
    assert loaded is cart and store.events_read == 0
    loaded.add("pear")
    assert await repo.save(loaded) == 3
    again = await repo.load("c1")
    assert again.items == {"apple": 1, "pear": 1} and store.events_read == 0


async def test_a_write_the_repository_did_not_make_forces_a_read() -> None:
    store = CountingStore()
    repo, other = EventSourcedRepository(Cart, store), EventSourcedRepository(Cart, store, cache_size=0)
    await repo.save(Cart.open("c1", "ann"))
    elsewhere = await other.load("c1")
    elsewhere.add("pear")
    await other.save(elsewhere)
    store.events_read = 0
    loaded = await repo.load("c1")
    assert loaded.items == {"pear": 1} and loaded.version == 2 and store.events_read == 2


async def test_a_store_that_cannot_prove_the_version_is_always_read() -> None:
    store = UnprovingStore()
    repo = EventSourcedRepository(Cart, store)
    await repo.save(Cart.open("c1", "ann"))
    store.events_read = 0
    await repo.load("c1")
    assert store.events_read == 1


async def test_a_handed_out_aggregate_is_not_shared_and_a_failed_command_leaves_it_out() -> None:
    store = CountingStore()
    repo = EventSourcedRepository(Cart, store)
    cart = Cart.open("c1", "ann")
    await repo.save(cart)
    first = await repo.load("c1")
    second = await repo.load("c1")  # the first is still out: a fresh instance
    assert first is cart and second is not cart
    first.add("apple")  # the command fails before saving: its pending event is never reused
    store.events_read = 0
    third = await repo.load("c1")
    assert third is not first and third.items == {} and store.events_read == 1


async def test_a_concurrency_error_evicts_the_aggregate() -> None:
    store = CountingStore()
    repo = EventSourcedRepository(Cart, store)
    cart = Cart.open("c1", "ann")
    await repo.save(cart)
    stale = await repo.load("c1")
    fresh = await repo.load("c1")  # read from the store
    fresh.add("pear")
    await repo.save(fresh)  # cached at version 2
    stale.add("apple")
    with pytest.raises(ConcurrencyError):
        await repo.save(stale)
    store.events_read = 0
    loaded = await repo.load("c1")
    assert loaded.items == {"pear": 1} and store.events_read == 2


async def test_the_cache_is_bounded() -> None:
    store = CountingStore()
    repo = EventSourcedRepository(Cart, store, cache_size=2)
    for n in range(3):
        await repo.save(Cart.open(f"c{n}", "ann"))
    store.events_read = 0
    await repo.load("c0")  # the oldest was dropped
    await repo.load("c2")
    assert store.events_read == 1


async def test_a_snapshot_at_the_proven_head_needs_no_stream_read() -> None:
    store, snapshots = CountingStore(), InMemorySnapshotStore()
    repo = EventSourcedRepository(Cart, store, snapshots=snapshots, snapshot_every=2, cache_size=0)
    cart = Cart.open("c1", "ann")
    cart.add("apple")
    await repo.save(cart)  # version 2: a snapshot at the head
    store.reads = 0
    loaded = await repo.load("c1")
    assert store.reads == 0 and loaded.version == 2 and loaded.items == {"apple": 1}
    cart.add("pear")
    await repo.save(cart)  # version 3: the snapshot is behind, so the rest is read
    loaded = await repo.load("c1")
    assert store.reads == 1 and loaded.version == 3 and loaded.items == {"apple": 1, "pear": 1}
    unproven = EventSourcedRepository(Cart, UnprovingStore(), snapshots=snapshots, snapshot_every=2, cache_size=0)
    assert await unproven.get("c1") is not None  # a snapshot without events: still read, never trusted
