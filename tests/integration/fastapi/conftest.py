"""Fixtures for the FastAPI tests: a private redis-server a test may kill, and isolation
from the working directory's configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi_support import PrivateRedis

from bento.managers import runtime


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)
    runtime.reset_container()
    yield
    runtime.reset_container()
