"""docs/cache-and-websockets.md: every Python block runs as a script of its own (the seed's
examples among them), and every environment block is valid configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bento.infrastructure.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "cache-and-websockets.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", PAGE, re.S)
BASH = re.findall(r"```bash\n(.*?)```", PAGE, re.S)


def test_the_page_has_the_seed_examples() -> None:
    assert len(PYTHON) >= 6
    assert any('await cache_manager.set("key", "value", ttl=3600)' in block for block in PYTHON)
    assert any("await ws_manager.broadcast(message)" in block for block in PYTHON)


@pytest.mark.parametrize("block", PYTHON, ids=[f"block{n}" for n in range(len(PYTHON))])
def test_every_python_block_runs(block: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE__", "CHANNEL__", "EVENT__"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("block", BASH, ids=[f"env{n}" for n in range(len(BASH))])
def test_every_environment_block_is_valid(block: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for line in block.splitlines():
        name, _, value = line.split("#")[0].strip().partition("=")
        if name:
            monkeypatch.setenv(name, value)
    settings = load_settings()
    if "CACHE__SESSION__CACHE_TYPE" in block:
        assert settings.cache["session"].cache_type == "redis"
        assert settings.cache["api_cache"].max_size == 5000
    else:
        assert settings.channel["default"].backend == "redis"
