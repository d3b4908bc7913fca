"""Events used by the contract suites and helpers (wire names under `bento.testing.`)."""

from __future__ import annotations

from bento.domain.events import DomainEvent


class ContractEvent(DomainEvent, name="bento.testing.contract_event"):
    """A numbered event with a key, used by the MessageBus and EventStore contracts."""

    seq: int
    key: str = ""
    blob: str = ""


class OtherContractEvent(DomainEvent, name="bento.testing.other_event"):
    note: str = ""


def make_event(seq: int, *, key: str = "", blob: str = "") -> ContractEvent:
    """A ContractEvent whose aggregate id is `key` (the bus's default partition key)."""
    event = ContractEvent(seq=seq, key=key, blob=blob)
    return event.with_metadata(aggregate_id=key) if key else event


class VersionedContractEvent(DomainEvent, name="bento.testing.versioned_event", version=2):
    """Version 2 keeps cents; version 1 had a float `amount` (the upcasting case of the dead-letter contract)."""

    amount_cents: int
