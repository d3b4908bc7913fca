import typing
from pathlib import Path

import pytest
import yaml

from bento import ConfigurationError
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.infrastructure.settings import EventBusSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config/bento.yaml, no .env
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


def test_defaults_are_embedded() -> None:
    settings = load_settings()
    assert settings.event_backend == "inprocess"
    assert settings.event_store.backend == "memory" and settings.clickhouse.mode == "embedded"


def test_seed_000_named_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__BACKEND", "memory")
    monkeypatch.setenv("EVENT__DOMAIN__BACKEND", "rabbitmq")
    monkeypatch.setenv("EVENT__DOMAIN__URL", "amqp://guest:guest@localhost:5672/")
    monkeypatch.setenv("EVENT__DOMAIN__EXCHANGE_NAME", "domain.events")
    monkeypatch.setenv("CHANNEL__BACKEND", "memory")
    monkeypatch.setenv("CHANNEL__DEFAULT__BACKEND", "redis")
    monkeypatch.setenv("CACHE__SESSION__CACHE_TYPE", "redis")
    settings = load_settings()
    domain = settings.event_instance("domain")
    assert isinstance(domain, RabbitMQSettings) and domain.exchange_name == "domain.events"
    assert settings.event_instance("default").backend == "inprocess"  # the alias, resolved once
    assert settings.event_backend == "inprocess"
    assert settings.channel["default"].backend == "redis"  # DEFAULT__ wins over the bare prefix
    assert set(settings.get_instances("cache")) == {"default", "session"}


def test_backend_is_inferred_from_the_url_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__AUDIT__URL", "redis://localhost:6379/5")
    assert load_settings().event_instance("audit").backend == "redis"


def test_invalid_settings_list_every_problem_with_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__DOMAIN__BACKEND", "activemq")
    monkeypatch.setenv("EVENT_STORE__BACKEND", "oracle")
    monkeypatch.setenv("EVENT__MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    text = str(caught.value)
    assert len(caught.value.problems) == 3
    assert "EVENT__DOMAIN" in text and "activemq" in text
    assert "EVENT_STORE__BACKEND" in text and "EVENT__DEFAULT__MAX_ATTEMPTS" in text
    assert isinstance(caught.value, ValueError)


def test_unknown_instance_names_the_variable_to_set() -> None:
    with pytest.raises(ConfigurationError, match="EVENT__NOPE__BACKEND"):
        load_settings().event_instance("nope")


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__DOMAIN__URL", "amqp://user:s3cret@host:5672/")
    monkeypatch.setenv("CLICKHOUSE__PASSWORD", "hunter2")
    settings = load_settings()
    shown = repr(settings) + str(settings.masked())
    assert "s3cret" not in shown and "hunter2" not in shown
    assert "s3cret" in settings.event_instance("domain").url.get_secret_value()  # type: ignore[union-attr]


def test_yaml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bento.yaml"
    config.write_text("service: {name: from-yaml}\nevent: {default: {backend: inprocess, max_attempts: 7}}\n")
    monkeypatch.setenv("BENTO_CONFIG", str(config))
    assert load_settings().default_event.max_attempts == 7
    assert load_settings().service.name == "from-yaml"
    monkeypatch.setenv("SERVICE__NAME", "from-env")
    assert load_settings().service.name == "from-env"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SERVICE__NAME=from-dotenv\n")
    assert load_settings().service.name == "from-dotenv"


def test_missing_config_file_named_by_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTO_CONFIG", "/nonexistent/bento.yaml")
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings()


def test_example_config_files_are_valid_and_up_to_date(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import subprocess
    import sys

    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_examples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    monkeypatch.setenv("BENTO_CONFIG", str(ROOT / "config" / "bento.yaml"))
    from_yaml = load_settings()
    assert {s.backend for s in from_yaml.event.values()} >= {"inprocess", "rabbitmq", "pulsar", "redis", "nats"}
    monkeypatch.delenv("BENTO_CONFIG")
    (tmp_path / ".env").write_text((ROOT / "config" / ".env.example").read_text())
    from_env = load_settings()
    assert from_env.masked() == from_yaml.masked()


def test_docker_compose_has_every_service_the_settings_can_name() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = set(compose["services"])
    union = typing.get_args(typing.get_args(EventBusSettings)[0])
    backends = {b for cls in union for b in typing.get_args(cls.model_fields["backend"].annotation)}
    needs = {"rabbitmq": "rabbitmq", "pulsar": "pulsar", "redis": "redis", "nats": "nats", "kafka": "kafka"}
    for backend in backends - {"inprocess", "memory"}:
        assert needs[backend] in services, backend
    assert "clickhouse" in services  # clickhouse.mode=server
