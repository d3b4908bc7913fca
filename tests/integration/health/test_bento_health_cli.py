"""`bento health` as an operator runs it: a subprocess, configured by environment, against a
private redis-server holding the bus, the inbox and the checkpoints; exit 0 and every
component up while it runs, exit 1 naming the components that are down once it is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from servers.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parents[3]


def _bento_health(redis_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT__", "INBOX__", "CHECKPOINT_STORE__"))}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        BENTO_CONTAINER="bento.infrastructure.container:BentoContainer",
        EVENT__URL=redis_url,
        INBOX__BACKEND="redis",
        INBOX__URL=redis_url,
        CHECKPOINT_STORE__BACKEND="redis",
        CHECKPOINT_STORE__URL=redis_url,
    )
    env.pop("BENTO_CONFIG", None)
    command = [sys.executable, "-m", "bento.cli", "health", "--timeout", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_every_component_up_then_the_redis_ones_down(private_redis: PrivateRedis, tmp_path: Path) -> None:
    up = _bento_health(private_redis.url, tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    lines = up.stdout.splitlines()
    assert lines[0] == "bento health: healthy"
    states = {line.split()[1]: line.split()[0] for line in lines[1:]}
    assert states == {
        "checkpoint_store": "up",
        "event:default": "up",
        "event_store": "up",
        "inbox": "up",
        "snapshot_store": "up",
    }
    assert "RedisInbox" in up.stdout and "RedisCheckpointStore" in up.stdout

    private_redis.stop()
    down = _bento_health(private_redis.url, tmp_path, "--json")
    assert down.returncode == 1, down.stdout + down.stderr
    report = json.loads(down.stdout)
    assert report["status"] == "unhealthy"
    states = {name: c["status"] for name, c in report["components"].items()}
    assert states == {
        "checkpoint_store": "down",
        "event:default": "down",
        "event_store": "up",
        "inbox": "down",
        "snapshot_store": "up",
    }
    assert "unreachable" in report["components"]["event:default"]["detail"]
    assert f"127.0.0.1:{private_redis.port}" in report["components"]["event:default"]["detail"]
