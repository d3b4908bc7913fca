"""Planting distinct credentials in every settings model bento has (tests of issue 10, item 8).

`settings_models()` walks the bento package, so a settings model added later is covered by
the secret tests without editing them. Imported by tests/unit/test_credentials.py and
tests/integration/test_secrets.py (tests/ is on sys.path through its conftest).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

import bento
from bento.application.credentials import SecretUrl
from servers import free_port

#: A field whose name has one of these may hold a credential, so it must be secret-typed.
CREDENTIAL_WORDS = ("url", "servers", "password", "passwd", "token", "secret", "dsn", "auth", "credential")


# -- finding every settings model ---------------------------------------------------------------
def _bento_modules() -> Iterator[types.ModuleType]:
    for info in pkgutil.walk_packages(bento.__path__, "bento."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def settings_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in _bento_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__.startswith("bento.") and cls.__name__.endswith("Settings"):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def secret_kind(annotation: Any) -> tuple[type[SecretStr], bool] | None:
    """(secret type, is a list) of a field's annotation, None when it is not secret-typed."""
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return annotation, False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args:
        inner = secret_kind(args[0])
        return (inner[0], True) if inner else None
    if origin in (typing.Union, types.UnionType):
        kinds = [k for k in (secret_kind(a) for a in args if a is not type(None)) if k]
        return kinds[0] if kinds else None
    return None


def is_credential_name(name: str) -> bool:
    return any(word in name.lower() for word in CREDENTIAL_WORDS)


# -- planting ------------------------------------------------------------------------------------
@dataclass
class Planted:
    """Every password and token handed out; `check(text)` fails naming any that shows.
    `query=True` plants URL passwords as `?password=…` instead of in the userinfo, for
    settings that refuse credentials there (Pulsar's service_url)."""

    words: list[str] = field(default_factory=list)
    closed_port: int = field(default_factory=free_port)
    query: bool = False

    def word(self, what: str) -> str:
        value = f"{what}-{uuid.uuid4().hex[:12]}"
        self.words.append(value)
        return value

    def url(self, default: str, tag: str, host: str = "127.0.0.1", port: int | None = None) -> str:
        scheme, _, rest = default.partition("://")
        path = rest.split("/", 1)[1] if "/" in rest else ""
        # The user name is not planted as a secret: drivers log it (aio-pika shows
        # `amqp://user:******@…`); a userinfo that IS a secret is planted by `token_url`.
        user = f"user-{uuid.uuid4().hex[:6]}"
        if self.query:
            return f"{scheme}://{host}:{port or self.closed_port}/{path}?password={self.word('pw' + tag)}"
        return f"{scheme}://{user}:{self.word('pw' + tag)}@{host}:{port or self.closed_port}/{path}"

    def token_url(self, scheme: str, tag: str, port: int) -> str:
        """`scheme://<token>@host:port`: NATS reads a lone userinfo as a token."""
        return f"{scheme}://{self.word('token' + tag)}@127.0.0.1:{port}"

    def value(self, default: Any, tag: str) -> str:
        if isinstance(default, SecretStr) and "://" in default.get_secret_value():
            return self.url(default.get_secret_value(), tag)
        return self.word("pw" + tag)

    def check(self, text: str, where: str) -> None:
        leaked = [word for word in self.words if word in text]
        assert not leaked, f"{where} shows {leaked}:\n{text[:3000]}"


def _default_of(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    default = info.get_default(call_default_factory=True)
    return default[0] if isinstance(default, list) and default else default


def plant(model: type[BaseModel], planted: Planted) -> dict[str, Any]:
    """Values for every secret-typed field of `model`, each with credentials of its own:
    URL passwords in the userinfo, or in the query when the model refuses the userinfo."""
    values = _plant(model, planted)
    try:
        model.model_validate(values)
    except ValidationError:
        planted.query = True
        try:
            values = _plant(model, planted)
        finally:
            planted.query = False
    return values


def _plant(model: type[BaseModel], planted: Planted) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind = secret_kind(info.annotation)
        if kind is None:
            continue
        default = _default_of(model, name)
        if kind[0] is SecretUrl and not (isinstance(default, SecretStr) and "://" in default.get_secret_value()):
            default = SecretStr("redis://127.0.0.1/0")
        tag = f"-{model.__name__}-{name}"
        values[name] = (
            [planted.value(default, tag), planted.value(default, tag)] if kind[1] else planted.value(default, tag)
        )
    return values
