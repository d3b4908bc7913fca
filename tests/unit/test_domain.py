from typing import Any

import pytest
from pydantic import Field, ValidationError

from bento import AggregateRoot, DomainEvent, DuplicateMessageTypeError, Entity, Event, ValueObject, when
from bento.domain.errors import InvalidMessageDefinitionError


class ItemAdded(DomainEvent, name="test.domain.item_added", version=2):
    sku: str
    quantity: int


class OrderCreatedEvent(Event):
    """Seed 001 style: wire name from an `event_name` property."""

    order_id: str
    amount: float
    user_id: str

    @property
    def event_name(self) -> str:
        return "test.domain.order.created"


class GoodEvent(Event):
    data: dict[str, Any] = Field(frozen=True)

    @property
    def event_name(self) -> str:
        return "test.domain.good.event"


class Unnamed(DomainEvent):
    x: int = 0


def test_wire_name_and_version_come_from_the_class_keyword() -> None:
    event = ItemAdded(sku="A", quantity=1)
    assert ItemAdded.__wire_name__ == "test.domain.item_added"
    assert event.event_name == "test.domain.item_added" and event.schema_version == 2


def test_seed_style_event_name_property_sets_the_wire_name() -> None:
    event = OrderCreatedEvent(order_id="123", amount=99.99, user_id="user_1")
    assert OrderCreatedEvent.__wire_name__ == "test.domain.order.created"
    assert event.event_name == "test.domain.order.created"
    assert GoodEvent.__wire_name__ == "test.domain.good.event"


def test_events_are_immutable_and_strict() -> None:
    event = ItemAdded(sku="A", quantity=1)
    with pytest.raises(ValidationError):
        event.sku = "B"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ItemAdded(sku="A", quantity=1, colour="red")  # type: ignore[call-arg]
    good = GoodEvent(data={"a": 1})
    with pytest.raises(ValidationError):
        good.data = {}  # type: ignore[misc]


def test_events_get_ids_timestamps_and_payload() -> None:
    a, b = ItemAdded(sku="A", quantity=1), ItemAdded(sku="A", quantity=1)
    assert a.message_id != b.message_id
    assert a.timestamp.tzinfo is not None
    assert a.payload() == {"sku": "A", "quantity": 1}


def test_class_name_is_the_default_wire_name() -> None:
    assert Unnamed.__wire_name__ == "Unnamed"


def test_duplicate_wire_names_fail_at_definition_time() -> None:
    with pytest.raises(DuplicateMessageTypeError, match=r"test\.domain\.item_added"):

        class Clash(DomainEvent, name="test.domain.item_added"):
            pass


def test_event_name_property_that_reads_fields_is_rejected() -> None:
    with pytest.raises(InvalidMessageDefinitionError):

        class Dynamic(Event):
            kind: str

            @property
            def event_name(self) -> str:
                return self.kind.upper()


class Basket(AggregateRoot):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.items: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.record(ItemAdded(sku=sku, quantity=quantity))

    @when(ItemAdded)
    def _added(self, event: ItemAdded) -> None:
        self.items[event.sku] = self.items.get(event.sku, 0) + event.quantity


def test_aggregate_records_applies_and_versions() -> None:
    basket = Basket("b-1")
    basket.add("A", 2)
    basket.add("A", 1)
    assert basket.items == {"A": 3} and basket.version == 2
    pending = basket.pending_events
    assert [e.metadata.aggregate_id for e in pending] == ["b-1", "b-1"]
    assert pending[0].metadata.aggregate_type == "Basket"
    assert basket.collect_events() == pending and basket.pending_events == []


def test_aggregate_rebuilds_from_history() -> None:
    history = [ItemAdded(sku="A", quantity=1), ItemAdded(sku="B", quantity=4)]
    basket = Basket.from_history("b-2", history)
    assert basket.items == {"A": 1, "B": 4} and basket.version == 2 and basket.pending_events == []


def test_missing_applier_names_the_method_to_write() -> None:
    class Empty(AggregateRoot):
        pass

    with pytest.raises(InvalidMessageDefinitionError, match="apply_ItemAdded"):
        Empty("e").record(ItemAdded(sku="A", quantity=1))


def test_convention_named_appliers_work() -> None:
    class Counter(AggregateRoot):
        def __init__(self, id: str) -> None:
            super().__init__(id)
            self.n = 0

        def apply_ItemAdded(self, event: ItemAdded) -> None:
            self.n += event.quantity

    counter = Counter("c")
    counter.record(ItemAdded(sku="A", quantity=5))
    assert counter.n == 5


def test_entities_compare_by_id_and_value_objects_by_value() -> None:
    class Line(Entity):
        qty: int

    class Money(ValueObject):
        amount: int
        currency: str

    assert Line(id="1", qty=1) == Line(id="1", qty=9)
    assert Line(id="1", qty=1) != Line(id="2", qty=1)
    assert Money(amount=1, currency="EUR") == Money(amount=1, currency="EUR")
    with pytest.raises(ValidationError):
        Money(amount=1, currency="EUR").amount = 2  # type: ignore[misc]
