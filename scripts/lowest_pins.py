"""Print the core dependencies of pyproject.toml pinned to their lowest declared versions
(`name>=1.2` becomes `name==1.2`), one per line, for the CI step that tests those floors."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lowest_pins(dependencies: list[str]) -> list[str]:
    pins = []
    for requirement in dependencies:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)\s*", requirement)
        if match is None:
            raise SystemExit(f"no lower bound to pin in {requirement!r}: declare core dependencies as name>=X")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sys.stdout.write("".join(f"{pin}\n" for pin in lowest_pins(project["dependencies"])))
