"""`bento config show`: the effective settings, secrets masked; `--sources` says where each came from."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from bento.application.credentials import mask_url

MASK = "**********"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("config", help="inspect configuration")
    config_sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    show = config_sub.add_parser("show", help="print the effective settings (secrets masked)")
    show.add_argument("--format", choices=("yaml", "json"), default="yaml")
    show.add_argument(
        "--sources",
        action="store_true",
        help="one line per setting with the source that set it (argument, env, .env, yaml or default)",
    )
    show.set_defaults(func=_show)
    parser.set_defaults(func=lambda args: _help(parser))


def _show(args: argparse.Namespace) -> int:
    from bento.infrastructure.settings import explain_settings, load_settings

    if args.sources:
        settings, origins = explain_settings()
        _print_sources(settings, origins, args.format)
        return 0
    data = load_settings().masked()
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
    return 0


def _print_sources(settings: BaseModel, origins: Any, fmt: str) -> None:
    from bento.infrastructure.settings_sources import origin_of

    rows = [(".".join(path), value, origin_of(origins, path)) for path, value in _flatten(settings.model_dump(), ())]
    if fmt == "json":
        print(
            json.dumps(
                [{"setting": s, "value": v, "source": o.kind, "file": o.file, "key": o.key} for s, v, o in rows],
                indent=2,
            )
        )
        return
    lines = [f"{setting}: {json.dumps(value) if not isinstance(value, str) else value}" for setting, value, _ in rows]
    width = max(map(len, lines), default=0)
    for line, (setting, _, origin) in zip(lines, rows, strict=True):
        # The key only when it is spelled differently from the setting (always, for variables).
        shown = origin if origin.key != setting else replace(origin, key=None)
        print(f"{line.ljust(width)}  # {shown}")


def _flatten(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _flatten(inner, (*path, str(key)))
    else:
        yield path, _shown(value)


def _shown(value: Any) -> Any:
    """Secrets masked; a URL keeps its scheme, host, port and path, with only credentials hidden."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return mask_url(secret) if "://" in secret else MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, list | tuple):
        return [_shown(item) for item in value]
    return to_jsonable_python(value)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
