"""JSON Schemas shipped with Bento: `envelope.schema.json` is Bento's wire envelope
(docs/wire-format.md). `load("envelope")` returns it as a dict."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load(name: str) -> dict[str, Any]:
    """The schema `<name>.schema.json` shipped in this package."""
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
