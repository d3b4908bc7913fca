"""Failures of the ClickHouse engines, in Bento's words (driver errors never escape)."""

from __future__ import annotations

from bento.domain.errors import BentoError


class ClickHouseError(BentoError):
    """A statement failed (bad SQL, a missing table, a server-side limit such as "too
    many parts"), or the engine is closed. `code` is ClickHouse's error code when known."""

    def __init__(self, reason: str, *, code: int | None = None, sql: str | None = None) -> None:
        where = f" in: {sql[:200]}" if sql else ""
        super().__init__(f"ClickHouse error{f' {code}' if code else ''}: {reason}{where}")
        self.reason, self.code, self.sql = reason, code, sql
