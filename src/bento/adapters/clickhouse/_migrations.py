"""Versioned schema migrations, shared by every ClickHouse adapter.

Each adapter declares an ordered list of `Migration`s under a `scope` (e.g. the
event-store table name). `apply_migrations` runs the ones not yet recorded in
`<database>.bento_migrations` and records them. ClickHouse has no transactional DDL,
so every statement must be idempotent (`CREATE TABLE IF NOT EXISTS`, ...): two
processes starting at once may both run a migration, which is then harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bento.adapters.clickhouse.engine import ClickHouseEngine

logger = logging.getLogger(__name__)

MIGRATIONS_TABLE = "bento_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. `statements` may use `{db}` (the database) and any names
    passed to `apply_migrations` as `names`."""

    version: int
    name: str
    statements: Sequence[str]


async def applied_versions(engine: ClickHouseEngine, scope: str) -> set[int]:
    rows = await engine.execute(
        f"SELECT DISTINCT version FROM {engine.table(MIGRATIONS_TABLE)} WHERE scope = %(scope)s",
        {"scope": scope},
    )
    return {int(r[0]) for r in rows}


async def apply_migrations(
    engine: ClickHouseEngine, scope: str, migrations: Sequence[Migration], **names: str
) -> list[int]:
    """Run the missing migrations of `scope` in version order; returns the versions run."""
    await engine.execute(
        f"CREATE TABLE IF NOT EXISTS {engine.table(MIGRATIONS_TABLE)} "
        "(scope String, version UInt32, name String, applied_at_us UInt64) "
        "ENGINE = MergeTree ORDER BY (scope, version)"
    )
    done = await applied_versions(engine, scope)
    ran: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        for statement in migration.statements:
            await engine.execute(statement.format(db=engine.database, **names))
        await engine.insert(
            MIGRATIONS_TABLE,
            ["scope", "version", "name", "applied_at_us"],
            [(scope, migration.version, migration.name, time.time_ns() // 1000)],
        )
        logger.info("applied ClickHouse migration %s v%d (%s)", scope, migration.version, migration.name)
        ran.append(migration.version)
    return ran
