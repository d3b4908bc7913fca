"""No credential is ever printed by settings (issue 10, item 8): the masking helpers, every
settings model's repr/str/JSON, validation errors and `bento config show`.

Connect failures, health checks and DEBUG logs are in tests/integration/test_secrets.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from bento.application.credentials import SecretUrl, mask_credentials, mask_url
from bento.infrastructure.settings import BentoSettings, load_settings
from credentials_support import Planted, is_credential_name, plant, secret_kind, settings_models

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://default:pw@cache.internal:6379/0", "redis://***@cache.internal:6379/0"),
        ("redis://:p@ss/w@rd@host/1", "redis://***@host/1"),  # '@' and '/' in the password
        ("nats://s3cr3t-token@nats:4222", "nats://***@nats:4222"),  # a lone userinfo is a token
        ("amqps://u:pw@mq:5671/vhost?heartbeat=5&password=x", "amqps://***@mq:5671/vhost?heartbeat=5&password=***"),
        ("pulsar+ssl://broker:6651?token=abc&x=1", "pulsar+ssl://broker:6651?token=***&x=1"),
        ("user:pw@host:4222", "***@host:4222"),  # no scheme
        ("redis://u:a,b@host:6379/0", "redis://***@host:6379/0"),  # ',' in the password
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_mask_url_hides_only_the_credentials(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_credentials_finds_urls_in_free_text() -> None:
    text = "Error 111 connecting to redis://default:hunter2@db:6379/0. Connection refused (retry amqp://g:pw@mq/)"
    assert mask_credentials(text) == (
        "Error 111 connecting to redis://***@db:6379/0. Connection refused (retry amqp://***@mq/)"
    )


def test_secret_url_shows_the_address_and_keeps_the_secret() -> None:
    class Model(BaseModel):
        url: SecretUrl
        servers: list[SecretUrl] = []

    model = Model(url=SecretStr("redis://u:pw@h:6379/0"), servers=["nats://tok@n:4222"])  # type: ignore[list-item]
    assert model.url.get_secret_value() == "redis://u:pw@h:6379/0"
    assert str(model.url) == f"{model.url}" == "redis://***@h:6379/0"
    assert model.model_dump(mode="json") == {"url": "redis://***@h:6379/0", "servers": ["nats://***@n:4222"]}
    assert "pw" not in repr(model) and "tok" not in repr(model)


def test_every_credential_field_of_every_settings_model_is_secret_typed() -> None:
    models = settings_models()
    assert len(models) >= 12, [m.__name__ for m in models]  # the walk really found them
    plain = [
        f"{model.__name__}.{name}"
        for model in models
        for name, info in model.model_fields.items()
        if is_credential_name(name) and secret_kind(info.annotation) is None
    ]
    assert not plain, f"credential-carrying settings that are not secret-typed: {plain}"
    urls = [
        f"{model.__name__}.{name}"
        for model in models
        for name, info in model.model_fields.items()
        if "url" in name or name == "servers"
        if (kind := secret_kind(info.annotation)) is not None and kind[0] is not SecretUrl
    ]
    assert not urls, f"URL settings that would hide the whole address instead of only its credentials: {urls}"


def _holding_credentials() -> list[type[BaseModel]]:
    models = [m for m in settings_models() if plant(m, Planted())]
    assert len(models) >= 10, [m.__name__ for m in models]
    return models


@pytest.mark.parametrize("model", _holding_credentials(), ids=lambda m: m.__name__)
def test_settings_show_no_planted_credential(model: type[BaseModel]) -> None:
    planted = Planted()
    values = plant(model, planted)
    settings = model.model_validate(values)
    dumped = settings.model_dump(mode="json")
    shown = "\n".join(
        [repr(settings), str(settings), settings.model_dump_json(), json.dumps(dumped), repr(settings.model_dump())]
    )
    planted.check(shown, f"{model.__name__} repr/str/dump")
    for name, value in values.items():  # the secret is kept, and a URL still says where it points
        secret = getattr(settings, name)
        first, shown_value = (secret[0], dumped[name][0]) if isinstance(value, list) else (secret, dumped[name])
        assert first.get_secret_value() == (value[0] if isinstance(value, list) else value)
        if "://" in first.get_secret_value():
            assert f"127.0.0.1:{planted.closed_port}" in shown_value and shown_value.startswith(
                first.get_secret_value().split("://")[0]
            )


def test_bad_settings_errors_show_no_credential() -> None:
    """A URL that fails validation is described without its value (pydantic and Bento errors)."""
    from bento.adapters.pulsar.settings import PulsarSettings
    from bento.adapters.rabbitmq.settings import RabbitMQSettings

    planted = Planted()
    for model, field_name in ((PulsarSettings, "service_url"), (RabbitMQSettings, "url")):
        bad = planted.url("http://x/", "-bad")
        with pytest.raises(ValueError) as caught:
            model.model_validate({field_name: bad})
        planted.check(str(caught.value) + repr(caught.value), f"{model.__name__} validation error")
        assert "http" in str(caught.value) or "amqp" in str(caught.value)
    # pulsar-client refuses `user:password@` and quotes it back: refused (unquoted) at validation.
    with pytest.raises(ValueError, match=r"must not carry credentials.*auth_token") as caught:
        PulsarSettings(service_url=planted.url("pulsar://x/", "-pulsar-userinfo"))  # type: ignore[arg-type]
    planted.check(str(caught.value) + repr(caught.value), "PulsarSettings userinfo error")


# -- bento config show ---------------------------------------------------------------------------
def _env_for_bento_settings(planted: Planted) -> dict[str, str]:
    """Environment variables setting every secret field BentoSettings can hold: each plain
    section, and one named instance per member of each named section's union."""
    env: dict[str, str] = {}
    for section, info in BentoSettings.model_fields.items():
        annotation = info.annotation
        named = typing.get_origin(annotation) is dict
        member = typing.get_args(annotation)[1] if named else annotation
        while typing.get_origin(member) is typing.Annotated:
            member = typing.get_args(member)[0]
        members = [m for m in typing.get_args(member) if isinstance(m, type)] or [member]
        for model in members:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            prefix = section.upper()
            if named:
                backend_field = "backend" if "backend" in model.model_fields else "cache_type"
                field = model.model_fields[backend_field]
                # A one-value Literal names the member; a free `backend: str` (checked against
                # the catalogue) keeps its default.
                backend = (typing.get_args(field.annotation) or (field.default,))[0]
                prefix = f"{prefix}__{model.__name__.upper()}"
                env[f"{prefix}__{backend_field.upper()}"] = backend
            secrets = plant(model, planted)
            if not named and len(members) > 1:
                if not secrets:
                    continue
                # One member of a plain section's union is active: the one holding secrets.
                env[f"{prefix}__BACKEND"] = typing.get_args(model.model_fields["backend"].annotation)[0]
            for name, value in secrets.items():
                env[f"{prefix}__{name.upper()}"] = json.dumps(value) if isinstance(value, list) else value
    return env


def _bento(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENT", "COMMAND", "CLICKHOUSE", "CHANNEL", "MQ__", "CACHE"))
    }
    full.update(env, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), full.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "bento.cli", *args], env=full, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_config_show_masks_every_planted_credential_and_keeps_the_address(tmp_path: Path) -> None:
    planted = Planted()
    env = _env_for_bento_settings(planted)
    assert any(key.startswith("EVENT__NATSSETTINGS__SERVERS") for key in env), env
    for output_format in ("yaml", "json"):
        shown = _bento(env, "config", "show", "--format", output_format, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        planted.check(shown.stdout + shown.stderr, f"bento config show --format {output_format}")
        urls = sum(value.count("://") for value in env.values())
        assert urls >= 9 and shown.stdout.count(f"127.0.0.1:{planted.closed_port}") == urls, shown.stdout
        pulsar = sum(value.startswith("pulsar://") for value in env.values())  # event and command sections
        assert shown.stdout.count(f"://***@127.0.0.1:{planted.closed_port}") == urls - pulsar  # all but Pulsar
        assert f"pulsar://127.0.0.1:{planted.closed_port}/?password=***" in shown.stdout
    settings = _in_env(env, load_settings)
    planted.check(repr(settings) + str(settings) + json.dumps(settings.masked()), "BentoSettings")
    # A bad value next to the secrets: the error lists problems, never a secret.
    broken = {**env, "EVENT__PULSARSETTINGS__SERVICE_URL": planted.url("http://x/", "-broken"), "MQ__X__URL": "5"}
    failed = _bento(broken, "config", "show", cwd=tmp_path)
    assert failed.returncode != 0 and "SERVICE_URL" in failed.stdout + failed.stderr
    planted.check(failed.stdout + failed.stderr, "bento config show with invalid settings")


def _in_env(env: dict[str, str], call: Callable[[], Any]) -> Any:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return call()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
