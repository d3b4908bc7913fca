"""docs/running-a-service.md, followed as written: its files in an empty folder, its three
commands as three processes on RabbitMQ (only the exchange names are made unique per run)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _blocks() -> list[tuple[str, str]]:
    page = (ROOT / "docs" / "running-a-service.md").read_text()
    return re.findall(r"```(\w+)\n(.*?)```", page, re.S)


def test_the_page_runs_as_written(tmp_path: Path, rabbitmq_url: str) -> None:
    commands: list[str] = []
    for language, code in _blocks():
        first = code.splitlines()[0]
        if first.startswith("# ") and first[2:].strip() in {"shop.py", "client.py", ".env"}:
            (tmp_path / first[2:].strip()).write_text(code)
        elif language == "bash" and ("bento run" in code or code.startswith("python client.py")):
            commands.append(code.strip())
    assert {p.name for p in tmp_path.iterdir()} == {"shop.py", "client.py", ".env"}
    assert len(commands) == 3
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE"))}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        COMMAND__URL=rabbitmq_url,
        EVENT__URL=rabbitmq_url,
        COMMAND__EXCHANGE_NAME=f"docs.{run}",
        EVENT__EXCHANGE_NAME=f"docs.{run}",
    )
    workers = []
    try:
        for command in commands[:2]:
            words = shlex.split(command)
            assignments = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
            argv = [sys.executable, "-m", "bento.cli", *words[len(assignments) + 1 :]]
            worker = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env={**env, **assignments},
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )
            workers.append(worker)
            assert worker.stderr is not None
            for line in worker.stderr:
                if " ready: " in line:
                    break
            else:
                raise AssertionError(f"{command!r} did not start ({worker.wait()})")
        client = subprocess.run(
            [sys.executable, *shlex.split(commands[2])[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines() == [
            "placed o-0",
            "placed o-1",
            "placed o-2",
            "refused: order o-bad: the amount must be positive",
            "total 30.0",
        ]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=60) for worker in workers] == [0] * len(workers)
