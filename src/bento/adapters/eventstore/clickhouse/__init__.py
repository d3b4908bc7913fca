"""ClickHouse EventStore on either engine: a server (clickhouse-driver, extra
`bento-ddd[clickhouse]`) or embedded chdb (extra `bento-ddd[embedded]`). The client
library is imported when an engine is built, not by this package."""

from bento.adapters.eventstore.clickhouse.event_store import ClickHouseEventStore

__all__ = ["ClickHouseEventStore"]
