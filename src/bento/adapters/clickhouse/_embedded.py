"""EmbeddedEngine: ClickHouse in-process through chdb, persisted in a folder.

Extra: `bento-ddd[embedded]`. chdb calls block (and are thread-safe), so they run in
the engine's thread pool. chdb holds ONE folder per process (a second folder is an
error) and a folder can be open in one process at a time: share one engine.

Results are read as JSONCompact (rows) or JSONColumnsWithMetadata (`execute_columns`)
and converted by column type. Large inserts whose
columns hold only ints or only strings (the event store's group commits) hand chdb the
Python lists themselves (`INSERT ... SELECT ... FROM Python(frame)`, chdb reading the
local variable `frame`): 2-4x faster than JSON text for 10,000 events, but with a
higher fixed cost, so below `_PYTHON_INPUT_ROWS` rows, and for anything else (dates,
None, floats), the columns go as one JSONColumns document.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bento.adapters.clickhouse._errors import ClickHouseError
from bento.adapters.clickhouse._sql import format_datetime, render
from bento.adapters.clickhouse.engine import ClickHouseEngine, Row
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.application.errors import MissingExtraError

try:
    from chdb import session as chdb_session
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("embedded ClickHouse", "embedded", "chdb") from exc

logger = logging.getLogger(__name__)

_CODE = re.compile(r"Code: (\d+)\.")
#: From this many rows on, an all-int/str columnar insert goes through `Python(frame)`.
_PYTHON_INPUT_ROWS = 1000


def _to_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _to_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _to_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _converter(kind: str) -> Callable[[Any], Any] | None:
    base = kind.removeprefix("Nullable(").removeprefix("LowCardinality(")
    if base.startswith("DateTime"):
        return _to_datetime
    if base.startswith("Date"):
        return _to_date
    if base.startswith(("Int", "UInt")):  # 64/128-bit integers may arrive quoted
        return _to_int
    return None


def _plain(values: Sequence[Any]) -> bool:
    """Only ints (not bools) or only strings: what chdb's Python() input reads exactly."""
    kinds = set(map(type, values))  # C-speed: this runs on every value of a 10,000-row commit
    return len(kinds) == 1 and next(iter(kinds)) in (int, str)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    return str(value)  # UUID, Decimal


class EmbeddedEngine(ClickHouseEngine):
    mode = "embedded"

    def __init__(self, settings: ClickHouseSettings) -> None:
        super().__init__(settings, pool_size=settings.pool_size)
        self.path = str(Path(settings.path).expanduser().resolve())
        self._session: Any = None

    def _open(self) -> None:
        Path(self.path).mkdir(parents=True, exist_ok=True)
        try:
            session_class: Any = chdb_session.Session  # chdb ships no type hints for it
            self._session = session_class(self.path)
        except Exception as exc:  # chdb raises plain RuntimeError/ChdbError here
            raise ClickHouseError(
                f"cannot open the embedded ClickHouse folder {self.path}: {exc}. chdb holds one folder "
                "per process and one process per folder; share one engine (bento's container does)",
            ) from exc

    def _release(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _query(self, sql: str, fmt: str) -> Any:
        if self._session is None:
            raise ClickHouseError("the embedded ClickHouse engine is not started", sql=sql)
        try:
            return self._session.query(sql, fmt)
        except RuntimeError as exc:  # ChdbError subclasses RuntimeError
            text = str(exc)
            match = _CODE.search(text)
            raise ClickHouseError(text.strip(), code=int(match.group(1)) if match else None, sql=sql) from exc

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        text = render(sql, params)
        raw = self._query(text, "JSONCompact").bytes()
        if not raw:
            return []
        document = json.loads(raw)
        data = document.get("data", [])
        meta = document.get("meta", [])
        converters = [(n, c) for n, col in enumerate(meta) if (c := _converter(col["type"]))]
        if not converters:
            return [tuple(row) for row in data]
        out: list[Row] = []
        for row in data:
            for n, convert in converters:
                row[n] = convert(row[n])
            out.append(tuple(row))
        return out

    def _execute_columns(self, sql: str, params: Mapping[str, Any] | None) -> list[Sequence[Any]]:
        text = render(sql, params)
        raw = self._query(text, "JSONColumnsWithMetadata").bytes()
        if not raw:
            return []
        document = json.loads(raw)
        if not document.get("rows"):
            return []
        data: dict[str, list[Any]] = document.get("data") or {}
        meta = document.get("meta", [])
        if len(data) != len(meta):
            raise ClickHouseError("execute_columns needs distinct column names in the SELECT", sql=text)
        columns: list[Sequence[Any]] = []
        for column in meta:
            values = data[column["name"]]
            convert = _converter(column["type"])
            if convert is _to_int and all(type(v) is int for v in values):  # not quoted: nothing to do
                convert = None
            columns.append([convert(v) for v in values] if convert is not None else values)
        return columns

    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]], columnar: bool) -> None:
        names = ", ".join(columns)
        if columnar and len(rows[0]) >= _PYTHON_INPUT_ROWS and all(_plain(values) for values in rows):
            frame = {name: list(values) for name, values in zip(columns, rows, strict=True)}  # noqa: F841 - read by chdb
            self._query(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(frame)", "CSV")
            return
        if columnar:
            document = {name: list(values) for name, values in zip(columns, rows, strict=True)}
        else:
            document = {name: [row[n] for row in rows] for n, name in enumerate(columns)}
        body = json.dumps(document, ensure_ascii=False, default=_json_default)
        self._query(f"INSERT INTO {table} ({names}) FORMAT JSONColumns\n{body}", "CSV")
