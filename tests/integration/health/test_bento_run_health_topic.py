"""`bento run` with HEALTH__ENABLED runs the health-check topic on the service's bus: the
publisher's messages reach the checker, as /metrics shows in the bus counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from servers import free_port, tcp_reachable

ROOT = Path(__file__).resolve().parents[3]


def _counter(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(f'{name}{{bus="event:default"}}'))
    return float(line.split()[-1])


def test_bento_run_publishes_and_checks_health_messages(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        "from bento.infrastructure.container import BentoContainer\n\n\nclass Svc(BentoContainer):\n    pass\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT__", "HEALTH__", "COMMAND__"))}
    env.update(PYTHONPATH=str(ROOT / "src"), HEALTH__ENABLED="true", HEALTH__INTERVAL="0.2", HEALTH__MAX_AGE="2")
    command = [sys.executable, "-m", "bento.cli", "run", "svc:Svc", "--http", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not tcp_reachable("127.0.0.1", port, timeout=0.2):
            assert process.poll() is None and time.monotonic() < deadline, "bento run did not serve --http"
            time.sleep(0.1)
        consumed = 0.0
        while consumed < 3 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            consumed = _counter(text, "bento_bus_messages_consumed_total")
            time.sleep(0.2)
        assert consumed >= 3
        assert _counter(text, "bento_bus_messages_published_total") >= consumed
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "health-check topic 'health_check_topic': every 0.2s, max age 2s" in err
