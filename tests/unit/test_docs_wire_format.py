"""docs/wire-format.md: its Python blocks run as written, and its JSON example is a valid envelope."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema

from bento.schemas import load

PAGE = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


def test_the_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert blocks
    for code in blocks:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok True"


def test_the_envelope_example_matches_the_schema_except_its_elisions() -> None:
    [example] = re.findall(r"```json\n(.*?)```", PAGE.read_text(), re.S)
    jsonschema.validate(json.loads(example.replace("…", "")), load("envelope"))
