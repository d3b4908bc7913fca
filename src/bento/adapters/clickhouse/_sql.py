"""SQL text helpers shared by both engines: identifier checks and parameter quoting.

Queries use clickhouse-driver's `%(name)s` placeholders. Both engines substitute
them here, client-side, with one escaping function, so a query behaves the same on
the server and on chdb (chdb's own `{name:Type}` parameters have no equivalent in
ClickHouse 18.16). As with Python %-formatting, a literal `%` in a query that has
parameters is written `%%`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Set
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bento.application.errors import InvalidTextError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STRING_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)


def check_identifier(name: str) -> str:
    """`name` if it is a plain identifier; table and database names are never quoted
    from user input, so anything else is refused before it reaches SQL."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid ClickHouse identifier (letters, digits and _ only)")
    return name


def quote_string(value: str) -> str:
    """`value` as a ClickHouse string literal; text that is not valid UTF-8 (a lone
    surrogate) is an InvalidTextError here, for every ClickHouse adapter, instead of the
    driver's UnicodeEncodeError or chdb's TypeError."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidTextError("query parameter", value) from None
    return "'" + value.translate(_STRING_ESCAPES) + "'"


def format_datetime(value: datetime) -> str:
    """`YYYY-MM-DD hh:mm:ss` in UTC (aware values are converted; naive ones are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def escape(value: Any) -> str:
    """One Python value as a ClickHouse literal (lists become arrays, tuples and sets
    become tuples for `IN`)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, datetime):
        return quote_string(format_datetime(value))
    if isinstance(value, date):
        return quote_string(value.isoformat())
    if isinstance(value, uuid.UUID):
        return quote_string(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(escape(v) for v in value) + "]"
    if isinstance(value, tuple | Set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, Set) else value
        return "(" + ", ".join(escape(v) for v in items) + ")"
    raise TypeError(f"cannot pass a {type(value).__name__} as a ClickHouse query parameter")


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    """`sql` with every `%(name)s` replaced by the escaped value (no substitution, and
    no `%%` handling, when `params` is None, exactly like clickhouse-driver)."""
    if params is None:
        return sql
    return sql % {name: escape(value) for name, value in params.items()}
