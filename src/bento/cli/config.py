"""`bento config show`: the effective settings, secrets masked."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("config", help="inspect configuration")
    config_sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    show = config_sub.add_parser("show", help="print the effective settings (secrets masked)")
    show.add_argument("--format", choices=("yaml", "json"), default="yaml")
    show.set_defaults(func=_show)
    parser.set_defaults(func=lambda args: _help(parser))


def _show(args: argparse.Namespace) -> int:
    from bento.infrastructure.settings import load_settings

    data = load_settings().masked()
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
    return 0


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
