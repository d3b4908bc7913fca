"""`bento run --reload` restarts on a Python source change, and only on one (a log file written
in the same folder restarted it in a loop before it watched *.py only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "from bento.infrastructure.container import BentoContainer\n\n\nclass Worker(BentoContainer):\n    pass\n"


def _wait_for(process: subprocess.Popen[str], lines: list[str], count: int, timeout: float = 60.0) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while sum(" ready: " in line for line in lines) < count:
        assert time.monotonic() < deadline, "".join(lines)
        line = process.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)


def test_reload_restarts_on_a_source_change_only(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(SERVICE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    process = subprocess.Popen(
        [sys.executable, "-m", "bento.cli", "run", "svc:Worker", "--reload"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        _wait_for(process, lines, 1)
        for n in range(5):  # not a source file: no restart
            (tmp_path / "service.log").write_text(f"line {n}\n")
            time.sleep(0.2)
        time.sleep(4.0)
        assert process.stderr is not None
        os.set_blocking(process.stderr.fileno(), False)
        lines.extend(process.stderr.readlines())
        assert sum(" ready: " in line for line in lines) == 1, "".join(lines)
        os.set_blocking(process.stderr.fileno(), True)
        (tmp_path / "svc.py").write_text(SERVICE + "\n# changed\n")
        _wait_for(process, lines, 2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
