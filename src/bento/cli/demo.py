"""`bento demo`: run the orders example service on embedded defaults."""

from __future__ import annotations

import argparse
import logging
import tempfile
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the orders demo (commands, events, projection, queries) on embedded defaults"
    )
    parser.set_defaults(func=_run)


async def _run(args: argparse.Namespace) -> int:
    try:
        from examples.orders.run import run_demo
    except ImportError as exc:  # pragma: no cover - the wheel ships examples; a broken install does not
        print(f"bento: the examples package is missing ({exc}); reinstall bento-ddd")
        return 1
    if not args.verbose:
        # The demo fails one subscriber on purpose and reports the dead letter itself.
        logging.getLogger("bento").setLevel(logging.CRITICAL)
    from examples.orders.run import demo_settings

    with tempfile.TemporaryDirectory(prefix="bento-demo-") as data_dir:
        report = await run_demo(demo_settings(data_dir))
    return 0 if report.orders and report.correlation_ok else 1
