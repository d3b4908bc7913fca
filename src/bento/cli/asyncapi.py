"""`bento asyncapi module:Container [--format yaml|json]`: the service's AsyncAPI 3.0 document
(bento.infrastructure.asyncapi), printed on stdout."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("asyncapi", help="print the service's AsyncAPI 3.0 document")
    parser.add_argument(
        "container",
        nargs="?",
        default=os.environ.get("BENTO_CONTAINER", "bento.infrastructure.container:BentoContainer"),
        help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
    )
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    parser.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    import yaml

    from bento.cli._stores import load_container
    from bento.infrastructure.asyncapi import asyncapi_document

    document = asyncapi_document(load_container(args.container))
    if args.format == "json":
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), end="")
    return 0
