"""ClickHouse connection shared by the event store, read models and checkpoints.

Two engines behind one SQL dialect: a server through clickhouse-driver (extra
`bento-ddd[clickhouse]`) and the embedded engine chdb (extra `bento-ddd[embedded]`).
Settings import without either client."""

from bento.adapters.clickhouse.settings import ClickHouseSettings

__all__ = ["ClickHouseSettings"]
