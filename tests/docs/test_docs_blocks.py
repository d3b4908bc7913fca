"""Every ```python block of README.md and docs/*.md runs as written (docs are code).

Each block is a complete program: it runs alone, in a fresh interpreter, in an empty
folder, with this checkout's `src` first on the path. Blocks that need a server get its
address from the environment the fixtures below set (`BENTO_DOCS_*`), the same variables a
reader sets. A block may be skipped only by an HTML comment right above it that says why:
`<!-- not run: needs … -->`; the test lists those reasons, and there must be few.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!--\s*(?P<note>[^>]*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S)
#: At most this many blocks in all the docs may be marked `not run`.
MAX_NOT_RUN = 4


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            note = match.group("note") or ""
            reason = note.removeprefix("not run:").strip() if note.startswith("not run:") else None
            line = text.count("\n", 0, match.start("code"))
            found.append(Block(page, line, match.group("code"), reason))
    return found


ALL = blocks()


def test_every_page_is_found_and_few_blocks_are_exempt() -> None:
    assert len(ALL) >= 10, [b.id for b in ALL]
    exempt = [(b.id, b.not_run) for b in ALL if b.not_run is not None]
    assert all(reason for _, reason in exempt), f"a `not run:` comment must say why: {exempt}"
    assert len(exempt) <= MAX_NOT_RUN, exempt


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_block_runs_as_written(block: Block, tmp_path: Path, docs_env: dict[str, str]) -> None:
    if block.not_run is not None:
        pytest.skip(f"marked not run: {block.not_run}")
    script = tmp_path / f"{block.page.stem}_{block.line}.py"
    script.write_text(block.code)
    env = {**docs_env, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"{block.id} failed:\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
