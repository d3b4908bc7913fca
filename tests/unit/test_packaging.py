"""What the wheel carries: only `bento` at top level, one version, an SPDX license with its
file, the [testing] extra for the shipped contract suites, and core dependencies that declare
the floors CI installs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import bento

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_only_bento_is_packaged_at_top_level() -> None:
    find = PROJECT["tool"]["setuptools"]["packages"]["find"]
    assert find == {"where": ["src"], "include": ["bento*"]}
    assert [p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").exists()] == ["bento"]
    assert importlib.util.find_spec("bento.examples.orders.run") is not None  # what `bento demo` runs
    assert not (ROOT / "examples").exists() and not (ROOT / "src" / "bento" / "testing" / "services").exists()


def test_one_version_an_spdx_license_and_metadata() -> None:
    project = PROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bento.__version__"}
    assert bento.__version__.count(".") == 2
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert any(c.startswith("License") for c in project["classifiers"]) is False  # SPDX replaces license classifiers
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])


def test_the_testing_extra_carries_what_the_contract_suites_import() -> None:
    testing = PROJECT["project"]["optional-dependencies"]["testing"]
    assert any(r.startswith("pytest>=") for r in testing) and any(r.startswith("pytest-asyncio") for r in testing)
    # The shipped suites import nothing from the test tree (server launchers live in tests/servers).
    code = "import bento.testing.contracts.event_store, bento.testing.contracts.message_bus; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_every_core_dependency_declares_the_floor_ci_installs() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from lowest_pins import lowest_pins
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pins = lowest_pins(PROJECT["project"]["dependencies"])
    assert len(pins) == len(PROJECT["project"]["dependencies"])
    assert all("==" in pin for pin in pins)
    assert "lowest_pins.py" in (ROOT / ".ci" / "run").read_text()
