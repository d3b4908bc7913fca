"""ServerEngine: a ClickHouse server over the native protocol (clickhouse-driver).

Extra: `bento-ddd[clickhouse]`. Calls run in the engine's thread pool; each worker
uses a `Client` from a pool of `pool_size` clients, because a driver Client is not
thread-safe. A broken connection is reopened by the driver on the next call.

The driver pings the server before every query to find a dead connection, which is a
full round trip before each INSERT of the event store's group commit. `_Client` skips
that ping while the connection answered a query within the last `FRESH_SECONDS`: a
connection in steady use is alive, and if it died in between anyway, the call fails
with BrokerUnavailableError (as a connection that breaks during the query does) and the
next call reconnects. The event store publishes no commit marker after a failed
INSERT, so a failure there never leaves a trusted cache behind.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from bento.adapters.clickhouse._errors import ClickHouseError
from bento.adapters.clickhouse._sql import render
from bento.adapters.clickhouse.engine import ClickHouseEngine, Row
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.shared.connecting import quiet_driver_logs
from bento.application.errors import BrokerUnavailableError, MissingExtraError

try:
    from clickhouse_driver import Client
    from clickhouse_driver import errors as driver_errors
    from clickhouse_driver.result import QueryInfo
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("ClickHouse server", "clickhouse", "clickhouse-driver") from exc

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NETWORK_ERRORS = (driver_errors.NetworkError, driver_errors.SocketTimeoutError, OSError, EOFError)

#: How long after its last answer a connection is used without the driver's ping.
FRESH_SECONDS = 2.0


class _Client(Client):  # type: ignore[misc]  # clickhouse-driver ships no type hints
    """A driver Client that skips the ping before a query on a connection that answered
    within `FRESH_SECONDS` (module docstring); otherwise the driver's own steps."""

    _answered = float("-inf")

    def establish_connection(self, settings: Any) -> None:
        connection = getattr(self, "connection", None)
        if connection is None or not connection.connected or time.monotonic() - self._answered > FRESH_SECONDS:
            super().establish_connection(settings)
            return
        # `Connection.force_connect` without its ping: the same connection, fresh settings.
        self.make_query_settings(settings)
        connection.check_query_execution()
        self.last_query = QueryInfo()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = super().execute(*args, **kwargs)
        self._answered = time.monotonic()
        return result


class ServerEngine(ClickHouseEngine):
    mode = "server"

    def __init__(self, settings: ClickHouseSettings) -> None:
        super().__init__(settings, pool_size=settings.pool_size)
        self._clients: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self.where = f"{settings.host}:{settings.port}"

    def _new_client(self) -> Any:
        s = self.settings
        # The connection database is `default`: the configured one may not exist yet, and
        # every adapter qualifies its tables anyway.
        return _Client(
            host=s.host,
            port=s.port,
            user=s.user,
            password=s.password.get_secret_value(),
            connect_timeout=s.connect_timeout,
            send_receive_timeout=s.send_receive_timeout,
            client_name="bento",
        )

    def _open(self) -> None:
        for _ in range(self.settings.pool_size):
            client = self._new_client()
            self._all.append(client)
            self._clients.put(client)
        # clickhouse-driver logs each refused connect with a traceback; the one-line
        # BrokerUnavailableError below says the same.
        with quiet_driver_logs("clickhouse_driver"):
            self._with_client(lambda c: c.execute("SELECT 1"), "SELECT 1")

    def _release(self) -> None:
        for client in self._all:
            try:
                client.disconnect()
            except _NETWORK_ERRORS as exc:
                logger.debug("closing a ClickHouse connection failed: %s", exc)
        self._all.clear()

    def _with_client(self, call: Callable[[Any], T], sql: str) -> T:
        client = self._clients.get()
        try:
            return call(client)
        except driver_errors.ServerException as exc:
            # 18.16 appends the server's C++ stack trace to every message; keep the sentence.
            reason = str(exc.message).split("Stack trace:")[0].strip()
            raise ClickHouseError(reason, code=exc.code, sql=sql) from exc
        except _NETWORK_ERRORS as exc:
            reason = str(exc) or type(exc).__name__
            raise BrokerUnavailableError("ClickHouse server", self.where, reason) from exc
        except driver_errors.Error as exc:
            raise ClickHouseError(str(exc), code=getattr(exc, "code", None), sql=sql) from exc
        finally:
            self._clients.put(client)

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        text = render(sql, params)
        result = self._with_client(lambda c: c.execute(text, with_column_types=True), text)
        if not isinstance(result, tuple):  # DDL and other statements without a result
            return []
        rows, types = result
        uuid_columns = [n for n, (_, kind) in enumerate(types) if "UUID" in kind]
        if not uuid_columns or not rows:
            return rows if isinstance(rows[0] if rows else (), tuple) else [tuple(r) for r in rows]
        out: list[Row] = []
        for row in rows:
            values = list(row)
            for n in uuid_columns:
                if values[n] is not None:
                    values[n] = str(values[n])
            out.append(tuple(values))
        return out

    def _execute_columns(self, sql: str, params: Mapping[str, Any] | None) -> list[Sequence[Any]]:
        text = render(sql, params)
        result = self._with_client(lambda c: c.execute(text, with_column_types=True, columnar=True), text)
        if not isinstance(result, tuple):
            return []
        columns, types = result
        if not columns or not columns[0]:
            return []
        out: list[Sequence[Any]] = list(columns)  # the driver's tuples, not copied
        for n, (_, kind) in enumerate(types):
            if "UUID" in kind:
                out[n] = [None if v is None else str(v) for v in out[n]]
        return out

    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]], columnar: bool) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        data = [list(c) for c in rows] if columnar else rows
        self._with_client(lambda c: c.execute(sql, data, columnar=columnar, types_check=False), sql)
