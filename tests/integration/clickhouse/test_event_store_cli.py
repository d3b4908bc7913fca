"""`bento events tail|stream|query` against the private server (in a subprocess, as a
user runs it, configured by environment variables)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.testing.events import OtherContractEvent, make_event
from servers.clickhouse_server import ClickHouseServer


def bento(server: ClickHouseServer, database: str, table: str, *args: str) -> list[dict[str, object]]:
    env = {
        **os.environ,
        "EVENT_STORE__BACKEND": "clickhouse",
        "EVENT_STORE__TABLE": table,
        "CLICKHOUSE__MODE": "server",
        "CLICKHOUSE__HOST": server.host,
        "CLICKHOUSE__PORT": str(server.port),
        "CLICKHOUSE__DATABASE": database,
        "STREAM_LOCK__BACKEND": "single-writer",
    }
    env.pop("BENTO_CONTAINER", None)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bento.cli import main; sys.exit(main())", "events", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


async def test_events_cli_reads_streams_tails_and_queries(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine, table_name: str
) -> None:
    async with ClickHouseEventStore(server_engine, single_writer=True, table=table_name) as store:
        await store.append("Order-1", [make_event(n) for n in range(3)], 0, aggregate_type="Order")
        await store.append(
            "Cart-1", [OtherContractEvent(note="hello").with_metadata(tenant_id="acme")], 0, aggregate_type="Cart"
        )
    db = server_engine.database

    streamed = bento(clickhouse_server, db, table_name, "stream", "Order-1", "--from-version", "1")
    assert [(e["stream"], e["version"]) for e in streamed] == [("Order-1", 2), ("Order-1", 3)]

    tailed = bento(clickhouse_server, db, table_name, "tail", "-n", "2")
    assert [e["position"] for e in tailed] == [3, 4]

    by_tenant = bento(clickhouse_server, db, table_name, "query", "--tenant", "acme")
    assert [e["stream"] for e in by_tenant] == ["Cart-1"] and by_tenant[0]["data"] == {"note": "hello"}
    by_type = bento(
        clickhouse_server,
        db,
        table_name,
        "query",
        "--type",
        "bento.testing.contract_event",
        "--aggregate-type",
        "Order",
        "--since",
        "2000-01-01T00:00:00",
    )
    assert len(by_type) == 3


async def test_reading_a_missing_database_creates_nothing(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine
) -> None:
    missing = f"bento_missing_{os.getpid()}"
    env = {
        **os.environ,
        "EVENT_STORE__BACKEND": "clickhouse",
        "CLICKHOUSE__MODE": "server",
        "CLICKHOUSE__HOST": clickhouse_server.host,
        "CLICKHOUSE__PORT": str(clickhouse_server.port),
        "CLICKHOUSE__DATABASE": missing,
        "STREAM_LOCK__BACKEND": "single-writer",
    }
    env.pop("BENTO_CONTAINER", None)
    for args in (["events", "tail"], ["events", "stream", "Order-1"], ["projections", "status"]):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bento.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "no event store at" in done.stderr and "Traceback" not in done.stderr
    databases = await server_engine.execute("SELECT name FROM system.databases WHERE name = %(n)s", {"n": missing})
    assert databases == []  # a read command never creates the database it was pointed at
