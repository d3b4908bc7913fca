"""Commands and queries have stable wire names and versions exactly like events."""

from __future__ import annotations

import pytest

from bento import Command, DomainError, DomainEvent, Query
from bento.application.serialization import JsonCodec
from bento.domain.errors import DuplicateMessageTypeError, InvalidMessageDefinitionError, domain_error_type


class ShipParcel(Command, name="test.wire.ship", version=2):
    parcel: str


class CountParcels(Query):
    @property
    def query_name(self) -> str:
        return "test.wire.count"


class CancelParcel(Command):
    __wire_name__ = "test.wire.cancel"


class PlainNamedCommand(Command):
    pass


def test_class_keyword_seed_property_and_dunder_set_the_wire_name() -> None:
    assert (ShipParcel.__wire_name__, ShipParcel.__schema_version__) == ("test.wire.ship", 2)
    assert CountParcels.__wire_name__ == "test.wire.count"
    assert CountParcels().query_name == "test.wire.count"
    assert CancelParcel.__wire_name__ == "test.wire.cancel"
    assert PlainNamedCommand.__wire_name__ == "PlainNamedCommand"
    assert ShipParcel(parcel="p").command_name == "test.wire.ship"


def test_a_duplicate_name_fails_at_definition_across_kinds() -> None:
    with pytest.raises(DuplicateMessageTypeError, match=r"test\.wire\.ship"):

        class Shipped(DomainEvent, name="test.wire.ship"):
            pass

    with pytest.raises(DuplicateMessageTypeError, match=r"test\.wire\.count"):

        class AlsoCount(Command, name="test.wire.count"):
            pass


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(InvalidMessageDefinitionError, match="version"):

        class Bad(Command, name="test.wire.bad", version=0):
            pass

    with pytest.raises(InvalidMessageDefinitionError, match="command_name"):

        class Reads(Command):
            who: str = "x"

            @property
            def command_name(self) -> str:
                return self.who + 1  # type: ignore[operator]


def test_the_codec_round_trips_commands_and_queries_by_wire_name() -> None:
    codec = JsonCodec()
    command = ShipParcel(parcel="p-1").with_metadata(correlation_id="c-1", tenant_id="t")
    body = codec.encode(command)  # type: ignore[arg-type]
    assert body.startswith(b'{"type":"test.wire.ship","version":2,')
    assert codec.decode(body) == command
    assert "test.wire.count" in codec.registry.names()


def test_domain_errors_with_a_wire_name_are_registered_and_unique() -> None:
    class ParcelLost(DomainError, name="test.wire.parcel_lost"):
        pass

    assert domain_error_type("test.wire.parcel_lost") is ParcelLost
    assert domain_error_type("bento.domain_error") is DomainError
    assert domain_error_type("test.wire.nothing") is None
    with pytest.raises(DuplicateMessageTypeError):

        class Other(DomainError, name="test.wire.parcel_lost"):
            pass
