"""`bento projections` subcommands (placeholder until implemented)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("projections", help="(projections commands are not available yet)")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
