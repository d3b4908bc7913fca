"""`bento demo` as a user runs it: a separate process, embedded ClickHouse (chdb)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bento_demo_runs_on_embedded_clickhouse(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="needs bento-ddd[embedded]: pip install 'bento-ddd[embedded]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "CLICKHOUSE", "READ_MODEL"))}
    result = subprocess.run(
        [sys.executable, "-m", "bento.cli", "demo"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "store=ClickHouseEventStore" in out
    assert "o-1: ann@example.com  3 x tea   13.50  paid   stock reserved: yes" in out
    assert "after 3 attempts: DomainError: product cup: 5 wanted, 2 in stock" in out
    assert "correlation id: yes" in out
    assert list(tmp_path.iterdir()) == []  # the demo keeps its data in a temporary folder
