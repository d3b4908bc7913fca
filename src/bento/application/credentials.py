"""Credentials in URLs: the one place that masks them, and the settings type that hides them.

Broker URLs carry passwords (`redis://default:<password>@host:6379/0`, `amqp://user:pw@…`,
`nats://token@…`, `…?password=…`). Every setting that may hold such a URL is a `SecretUrl`,
and every error and log line that names an address passes it through `mask_url` (one value)
or `mask_credentials` (free text such as a driver's exception message). Masking keeps the
scheme, host, port, path and harmless query parameters, so an operator still sees *where*,
and replaces the whole userinfo (user names can be tokens) and the values of query
parameters whose name suggests a secret with `***`. Adapters import this module; it is
neutral ground, so no adapter needs another adapter's private helper.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import core_schema

__all__ = ["MASK", "SecretUrl", "mask_credentials", "mask_url"]

MASK = "***"

# `scheme://userinfo@`: userinfo runs to the LAST '@' before whitespace, so a password
# containing '@' or '/' is masked whole (masking too much is the safe failure).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s]*@")
# `user:password@host` with the scheme already stripped (pulsar-client's "invalid hostname:
# u:pw@host:6650"): a colon in the userinfo and a host after the '@'.
_BARE_USERINFO = re.compile(r"(?<![\w/:@.])[^\s:/@'\"]+:(?!//)[^\s@'\"]*@(?=[\w\[])")
# `?password=…`, `&auth_token=…` (redis-py and others read credentials from the query).
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&#\s]*(?:pass|pwd|token|secret|key|auth|credential|jwt|sig)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


def mask_credentials(text: str) -> str:
    """`text` with the credentials of every URL in it masked (see the module docstring)."""
    text = _BARE_USERINFO.sub(f"{MASK}@", _USERINFO.sub(rf"\g<scheme>{MASK}@", text))
    return _SECRET_QUERY.sub(rf"\g<name>{MASK}", text)


def mask_url(url: str) -> str:
    """One URL with its credentials masked; a URL without a scheme (`user:pw@host:4222`,
    which some clients accept) is masked too. A value is never split on ',' (a password
    may hold one): mask each URL of a list on its own, as NatsSettings.address does."""
    if "://" not in url and "@" in url:
        url = f"{MASK}@{url.rsplit('@', 1)[1]}"
    return mask_credentials(url)


class SecretUrl(SecretStr):
    """A URL setting that may carry credentials. `get_secret_value()` is the real URL;
    `str()`, `repr()`, f-strings and JSON dumps (`bento config show`) show `mask_url` of it,
    so the address stays readable and the credentials never appear.

    A plain string or a `SecretStr` is accepted where a SecretUrl is expected."""

    def _display(self) -> str:
        return mask_url(self.get_secret_value())

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            _unwrap_secret,
            super().__get_pydantic_core_schema__(source, handler),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize, info_arg=True, when_used="unless-none"
            ),
        )


def _serialize(value: SecretUrl, info: core_schema.SerializationInfo) -> str | SecretUrl:
    # SecretStr's own serializer shows '**********'; a URL shows where it points instead.
    return str(value) if info.mode == "json" else value


def _unwrap_secret(value: Any) -> Any:
    if isinstance(value, SecretStr) and not isinstance(value, SecretUrl):
        return value.get_secret_value()
    return value
