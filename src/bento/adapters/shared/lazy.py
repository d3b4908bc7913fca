"""The module `__getattr__` of an adapter package whose classes need an optional client library.

`import bento` and importing an adapter's settings must work with no broker client
installed; only asking for the adapter class imports the client. If the client is
missing that is a MissingExtraError naming the extra to install, not a bare
ImportError from deep inside the adapter. Every client-backed adapter package had the
same hand-written `__getattr__` for this; `lazy_classes` builds it from a table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_classes(
    package: str, *, adapter: str, extra: str, client: str, classes: Mapping[str, str]
) -> Callable[[str], Any]:
    """A `__getattr__` for `package`: `classes` maps an attribute to the module defining it
    (relative to `package` when it starts with a dot).

    `client` is the library imported first (`aio_pika`); `adapter` and `extra` go into
    the error message (`pip install 'bento-ddd[<extra>]'`)."""
    table = dict(classes)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            importlib.import_module(client)
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError(adapter, extra, client) from exc
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
