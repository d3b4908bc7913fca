"""The event table, its migrations, and the row <-> StoredEvent mapping.

One table holds every event. It is ordered by (stream, version), so loading an
aggregate is a primary-key range read, and partitioned by month of the recording
time. `recorded_at_us` keeps microseconds in a UInt64 (ClickHouse 18.16 has no
DateTime64). `event_id` is a String: the message id, a UUID unless a caller chose
another id, which then round-trips unchanged. A small `index_granularity` keeps a
stream read to a few small granules.

Ten columns are stored; `tenant_id`, `correlation_id`, `causation_id` and
`recorded_date` are ALIAS columns, computed on read from `metadata` (the codec writes
those keys at the top level of the metadata JSON, before any nested object, so
`visitParamExtractString` finds them first) and from `recorded_at_us`. Every stored
column is two files in every part on 18.16, and a part is written per INSERT: fewer
stored columns make each group commit cheaper on a slow disk. Tables created by
earlier versions store all 14 columns; the store detects that (`LEGACY_COLUMNS`) and
keeps filling them.

The SQL runs unchanged on ClickHouse 18.16 and on chdb's modern engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bento.adapters.clickhouse._migrations import Migration
from bento.application.ports.event_store import StoredEvent

#: Columns in insert order.
INSERT_COLUMNS = (
    "position",
    "stream",
    "version",
    "aggregate_type",
    "event_id",
    "event_type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at_us",
)

#: Stored in tables created before the ALIAS columns, appended after INSERT_COLUMNS.
LEGACY_COLUMNS = ("tenant_id", "correlation_id", "causation_id", "recorded_date")

#: Columns read back, in the order `to_stored_events` expects.
SELECT_COLUMNS = (
    "position, stream, version, event_id, event_type, schema_version, data, metadata, recorded_at_us, "
    "aggregate_type, tenant_id, correlation_id, causation_id"
)

MIGRATIONS = (
    Migration(
        1,
        "create the events table",
        (
            """CREATE TABLE IF NOT EXISTS {events} (
                position UInt64,
                stream String,
                version UInt64,
                aggregate_type String,
                event_id String,
                event_type String,
                schema_version UInt32,
                data String,
                metadata String,
                recorded_at_us UInt64,
                tenant_id String ALIAS visitParamExtractString(metadata, 'tenant_id'),
                correlation_id String ALIAS if(visitParamExtractString(metadata, 'correlation_id') = '',
                    event_id, visitParamExtractString(metadata, 'correlation_id')),
                causation_id String ALIAS visitParamExtractString(metadata, 'causation_id'),
                recorded_date Date ALIAS toDate(toDateTime(intDiv(recorded_at_us, 1000000), 'UTC'))
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMM(toDateTime(intDiv(recorded_at_us, 1000000), 'UTC'))
            ORDER BY (stream, version)
            SETTINGS index_granularity = 1024""",
        ),
    ),
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros_to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def datetime_to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_stored_events(columns: Sequence[Sequence[Any]]) -> list[StoredEvent]:
    """The StoredEvents of a result read column by column (`engine.execute_columns` of
    SELECT_COLUMNS): one per row, straight from the columns, with no row tuples.
    A group commit gives every event the same recording time, so each distinct time is
    converted once."""
    if not columns:
        return []
    (positions, streams, versions, ids, types, schema_versions, data, metadata, recorded, *rest) = columns
    times = {micros: micros_to_datetime(micros) for micros in set(recorded)}
    return list(
        map(
            StoredEvent,
            positions,
            streams,
            versions,
            ids,
            types,
            schema_versions,
            data,
            metadata,
            map(times.__getitem__, recorded),
            *rest,
        )
    )
