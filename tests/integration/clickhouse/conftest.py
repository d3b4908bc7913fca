"""ClickHouse fixtures: one private server per test session, one embedded (chdb) engine.

The server is Debian's clickhouse-server started with its own config, folder and free
ports (installed with apt first when missing and possible). Under CI=true a server
that cannot be installed or started fails the run; locally the tests skip, naming the
install command.

chdb holds ONE folder per process, so the whole session shares a single embedded
engine on a temporary folder; tests isolate themselves with unique table names.
Engines keep no asyncio state, so session-wide ones serve every test's event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine, build_engine
from bento.adapters.clickhouse.settings import ClickHouseSettings
from servers import in_ci
from servers.clickhouse_server import INSTALL_COMMAND, ClickHouseServer, install_clickhouse_server


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    """A private clickhouse-server (attributes `host`, `port`), stopped by PID at the end."""
    if not install_clickhouse_server():
        _unavailable(f"clickhouse-server is not installed; install it with: {INSTALL_COMMAND}")
    server = ClickHouseServer()
    try:
        server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        server.cleanup()
        _unavailable(f"the private clickhouse-server did not start: {exc}")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def clickhouse_server_settings(clickhouse_server: ClickHouseServer) -> ClickHouseSettings:
    return ClickHouseSettings(
        mode="server", host=clickhouse_server.host, port=clickhouse_server.port, database="bento_test"
    )


@pytest.fixture(scope="session")
def server_engine(clickhouse_server_settings: ClickHouseSettings) -> Iterator[ClickHouseEngine]:
    """One server engine for the session (engines hold no asyncio state, so any test's
    loop can use it). Tests that need their own build one with `open_engine`."""
    engine = build_engine(clickhouse_server_settings)
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


@pytest.fixture(params=["embedded", "server"])
def any_engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    """Each engine in turn (a sync fixture, so it can pick a session fixture by name)."""
    engine: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return engine


@pytest.fixture(scope="session")
def embedded_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEngine]:
    """THE embedded engine of this test process (chdb allows one folder per process)."""
    try:
        import chdb  # noqa: F401
    except ImportError:
        _unavailable("chdb is not installed; install it with: pip install 'bento-ddd[embedded]'")
    folder: Path = tmp_path_factory.mktemp("chdb")
    engine = build_engine(ClickHouseSettings(mode="embedded", path=str(folder), database="bento_test"))
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"
