"""Pydantic model -> ClickHouse columns, and values both ways.

Types are chosen so the same table works on ClickHouse 18.16 and on chdb:

    str, Literal[str...], UUID, Decimal, str-Enum  -> String
    int, int-Enum                                  -> Int64
    float                                          -> Float64
    bool                                           -> UInt8
    datetime                                       -> Int64 microseconds since the epoch, UTC
                                                      (18.16 has no DateTime64; naive values are
                                                      taken as UTC and come back aware)
    date                                           -> Date
    anything else (lists, dicts, nested models)    -> String holding JSON
    X | None                                       -> Nullable(X)

The record's `id` is always a String column (the port addresses records by string id).
"""

from __future__ import annotations

import enum
import json
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from bento.adapters.clickhouse._sql import check_identifier

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Bookkeeping columns; model fields may not use these names.
VERSION_COLUMN = "_bento_version"
DELETED_COLUMN = "_bento_deleted"
RESERVED = frozenset({VERSION_COLUMN, DELETED_COLUMN})

Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _to_micros(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: Any) -> Any:
    return EPOCH + timedelta(microseconds=int(value))


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _bool_out(value: Any) -> Any:
    return 1 if value else 0


def _bool_in(value: Any) -> Any:
    return bool(int(value))


def _to_text(value: Any) -> Any:
    return str(value)


@dataclass(frozen=True, slots=True)
class Column:
    """One model field as a column: its ClickHouse type, how a Python value is written
    (`encode`, from `model_dump(mode="python")`) and how a stored value is read back."""

    name: str
    sql_type: str
    nullable: bool
    encode: Convert
    decode: Convert
    json: bool = False

    @property
    def ddl(self) -> str:
        kind = f"Nullable({self.sql_type})" if self.nullable else self.sql_type
        return f"{self.name} {kind}"

    def write(self, value: Any) -> Any:
        if value is None:
            return None if self.nullable else self.default()
        return self.encode(value)

    def read(self, value: Any) -> Any:
        if value is None:
            return None
        return self.decode(value)

    def default(self) -> Any:
        """The value a tombstone row carries (never read back)."""
        if self.nullable:
            return None
        return {"String": "", "Int64": 0, "Float64": 0.0, "UInt8": 0, "Date": date(1970, 1, 1)}[self.sql_type]


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return annotation, nullable  # a real union: stored as JSON
    return annotation, False


def _scalar(annotation: Any) -> tuple[str, Convert, Convert] | None:
    if typing.get_origin(annotation) is typing.Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return "String", _identity, _identity
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "Int64", _identity, int
        return None
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, enum.Enum):
        if issubclass(annotation, int):
            return "Int64", _enum_value, int
        return "String", lambda v: str(_enum_value(v)), _identity
    if issubclass(annotation, bool):
        return "UInt8", _bool_out, _bool_in
    if issubclass(annotation, int):
        return "Int64", _identity, int
    if issubclass(annotation, float):
        return "Float64", _identity, float
    if issubclass(annotation, str):
        return "String", _identity, _identity
    if issubclass(annotation, datetime):
        return "Int64", _to_micros, _from_micros
    if issubclass(annotation, date):
        return "Date", _identity, _identity
    if issubclass(annotation, uuid.UUID | Decimal):
        return "String", _to_text, _identity
    return None


def columns_of(model: type[BaseModel]) -> list[Column]:
    """The columns of `model`, `id` first."""
    if "id" not in model.model_fields:
        raise TypeError(f"read model {model.__name__} needs an `id` field")
    columns = [Column("id", "String", False, _to_text, _identity)]
    for name, field in model.model_fields.items():
        if name == "id":
            continue
        if name in RESERVED:
            raise TypeError(f"read model {model.__name__}: field name {name!r} is reserved by bento")
        check_identifier(name)
        annotation, nullable = _unwrap_optional(field.annotation)
        scalar = _scalar(annotation)
        if scalar is None:
            columns.append(Column(name, "String", nullable, json.dumps, json.loads, json=True))
        else:
            sql_type, encode, decode = scalar
            columns.append(Column(name, sql_type, nullable, encode, decode))
    return columns


def encode_record(record: BaseModel, columns: list[Column]) -> tuple[Any, ...]:
    """A record's column values, in column order."""
    python = record.model_dump()
    needs_json = any(c.json for c in columns)
    as_json = record.model_dump(mode="json") if needs_json else python
    return tuple(c.write(as_json[c.name] if c.json else python[c.name]) for c in columns)


def decode_row(model: type[BaseModel], columns: list[Column], row: tuple[Any, ...]) -> Any:
    return model.model_validate({c.name: c.read(v) for c, v in zip(columns, row, strict=False)})


def filter_value(column: Column, value: Any) -> Any:
    """A `where` value as stored (enums by value, datetimes in microseconds, ...)."""
    if column.json:
        return json.dumps(value)
    return column.encode(value)


def check_filters(model: type[BaseModel], columns: Mapping[str, Column], where: Mapping[str, Any]) -> None:
    unknown = sorted(set(where) - set(columns))
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {unknown}; fields: {sorted(columns)}")
