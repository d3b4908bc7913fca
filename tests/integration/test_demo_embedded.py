"""`bento demo` as a user runs it: a separate process, embedded ClickHouse (chdb), data kept in
`.bento-demo/`, a second run adding to it, and the closing lines' commands reading it."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bento(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bento.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bento_demo_keeps_its_data_reruns_and_says_how_to_explore_it(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="needs bento-ddd[embedded]: pip install 'bento-ddd[embedded]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "CLICKHOUSE", "READ_MODEL", "BENTO"))}
    first = bento(tmp_path, env, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "run 1: bus=InProcessMessageBus, store=ClickHouseEventStore" in out
    assert "o-1: ann@example.com  3 x tea   13.50  paid   stock reserved: yes" in out
    assert "on purpose: order o-3 wants 5 cup, only 2 are in stock" in out
    assert "after 3 attempts: DomainError: product cup: 5 wanted, 2 in stock" in out
    assert "correlation id: yes" in out
    assert (tmp_path / ".bento-demo").is_dir()

    second = bento(tmp_path, env, "demo")  # the same data: new ids, no "stream is at version 2, not 0"
    assert second.returncode == 0, second.stdout + second.stderr
    assert "run 2:" in second.stdout and "o-4: ann@example.com" in second.stdout
    assert "after 3 attempts: DomainError: product cup-2: 5 wanted, 2 in stock" in second.stdout

    # The closing lines' commands, run as printed.
    explore = second.stdout.split("Explore it:\n", 1)[1].splitlines()
    exported = {}
    for line in (x.strip() for x in explore if x.strip().startswith("export ")):
        exported.update(dict(item.split("=", 1) for item in shlex.split(line)[1:]))
    commands = [shlex.split(x.strip())[1:] for x in explore if x.strip().startswith("bento ")]
    assert ["events", "stream", "Order-o-4"] in commands and ["projections", "status"] in commands
    for command in commands:
        done = bento(tmp_path, {**env, **exported}, *command)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
    status = bento(tmp_path, {**env, **exported}, "projections", "status", "--json")
    assert '"name": "order_summary"' in status.stdout and '"lag": 0' in status.stdout

    reset = bento(tmp_path, env, "demo", "--reset")
    assert "run 1:" in reset.stdout, reset.stdout + reset.stderr
