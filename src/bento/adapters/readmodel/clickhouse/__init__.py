"""ClickHouse read models: tables declared from pydantic models (server or chdb engine)."""

from bento.adapters.readmodel.clickhouse.read_model import ClickHouseReadModel

__all__ = ["ClickHouseReadModel"]
