"""ClickHouse: the EventStore, ReadModel, CheckpointStore, SnapshotStore and Inbox adapters, on one
engine they share (`engine.open_engine`).

Two engines behind one SQL dialect: a server through clickhouse-driver (extra
`bento-ddd[clickhouse]`) and the embedded engine chdb (extra `bento-ddd[embedded]`).
Settings import without either client."""

from bento.adapters.clickhouse.settings import ClickHouseSettings

__all__ = ["ClickHouseSettings"]
