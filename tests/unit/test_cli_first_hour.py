"""The `bento` command as a newcomer meets it: --version, pipes, hints, exit codes, --json,
and read commands that never create a store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bento
from bento.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("EVENT", "CLICKHOUSE", "CHECKPOINT", "READ_MODEL", "BENTO")):
            monkeypatch.delenv(name)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"bento {bento.__version__}"


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes (`bento … | head` after head exits)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bento.cli", "config", "show"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr, done.stderr.decode()
    assert done.returncode == 141


def test_empty_reads_say_why_and_an_unknown_stream_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "tail"]) == 0
    assert "no events in the store (the event store is the in-memory default" in capsys.readouterr().err
    assert main(["events", "query", "--type", "x"]) == 0
    assert "no events match" in capsys.readouterr().err
    assert main(["events", "stream", "Order-42"]) == 1
    err = capsys.readouterr().err
    assert "no stream named 'Order-42'" in err and "EVENT_STORE__BACKEND" in err


def test_reading_a_missing_embedded_store_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_STORE__BACKEND", "clickhouse")
    monkeypatch.setenv("CLICKHOUSE__PATH", str(tmp_path / "nowhere"))
    for command in (["events", "tail"], ["events", "stream", "Order-1"], ["projections", "status"]):
        assert main(command) == 1
        assert "no event store at" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_container_is_imported_from_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "first_hour_app.py").write_text(
        "from bento.infrastructure.container import BentoContainer\n\nclass App(BentoContainer):\n    pass\n"
    )
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["projections", "status", "--container", "first_hour_app:App", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no projections or checkpoints yet" in captured.err


def test_projections_status_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    container = "bento.examples.orders.container:OrdersContainer"
    assert main(["projections", "status", "--container", container, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"name": "order_summary", "position": 0, "head": 0, "lag": 0, "kind": "projection"}]
