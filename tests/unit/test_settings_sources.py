"""Settings a user can predict: arguments > environment > `.env` > YAML > defaults, whichever
spelling each source uses; a backend changed in a higher source starts the instance afresh;
unreadable files name file and line; `bento config show --sources` says where values came from."""

import json
import os
import re
import shutil
import subprocess
import sys
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
import yaml

from bento import ConfigurationError
from bento.adapters.memory.settings import MemoryEventStoreSettings
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.cli import main
from bento.infrastructure.settings import BentoSettings, explain_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("argument", "env", ".env", "yaml")  # highest precedence first
SPELLINGS = ("bare", "default")  # EVENT__FIELD / EVENT__DEFAULT__FIELD


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # config/bento.yaml and .env are written here per test
    monkeypatch.delenv("BENTO_CONFIG", raising=False)
    for name in list(os.environ):
        if name.split("__")[0] in {"EVENT", "CHANNEL", "MQ", "CACHE", "EVENT_STORE", "SERVICE", "CLICKHOUSE"}:
            monkeypatch.delenv(name)


class Sources:
    """Sets one value in any source, spelled bare or as instance DEFAULT, and loads the result."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.arguments: dict[str, Any] = {}
        self.yaml: dict[str, Any] = {}
        self.dotenv: list[str] = []

    def set(self, source: str, section: str, instance: str | None, field: str, value: Any) -> None:
        path = [section, field] if instance is None else [section, instance, field]
        if source in ("env", ".env"):
            name, text = "__".join(p.upper() for p in path), value if isinstance(value, str) else json.dumps(value)
            if source == "env":
                self.monkeypatch.setenv(name, text)
            else:
                self.dotenv.append(f"{name}={text}")
            return
        tree = self.arguments if source == "argument" else self.yaml
        for key in path[:-1]:
            tree = tree.setdefault(key, {})
        tree[path[-1]] = value

    def set_event(self, source: str, spelling: str, field: str, value: Any) -> None:
        self.set(source, "event", None if spelling == "bare" else "default", field, value)

    def load(self) -> BentoSettings:
        if self.dotenv:
            Path(".env").write_text("\n".join(self.dotenv) + "\n")
        if self.yaml:
            Path("config").mkdir(exist_ok=True)
            Path("config/bento.yaml").write_text(yaml.safe_dump(self.yaml))
        return load_settings(**self.arguments)


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> Sources:
    return Sources(monkeypatch)


PAIRS = [(high, low) for high, low in permutations(SOURCES, 2) if SOURCES.index(high) < SOURCES.index(low)]


@pytest.mark.parametrize("high_spelling", SPELLINGS)
@pytest.mark.parametrize("low_spelling", SPELLINGS)
@pytest.mark.parametrize(("high", "low"), PAIRS)
def test_the_higher_source_wins_whichever_spelling_each_uses(
    sources: Sources, high: str, low: str, high_spelling: str, low_spelling: str
) -> None:
    sources.set_event(low, low_spelling, "max_attempts", 3)
    sources.set_event(high, high_spelling, "max_attempts", 9)
    assert sources.load().default_event.max_attempts == 9


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("source", SOURCES)
def test_any_source_beats_the_default(sources: Sources, source: str, spelling: str) -> None:
    sources.set_event(source, spelling, "max_attempts", 3)
    assert sources.load().default_event.max_attempts == 3


def test_within_one_source_the_explicit_default_instance_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("EVENT__DEFAULT__MAX_ATTEMPTS", "9")
    assert load_settings().default_event.max_attempts == 9


@pytest.mark.parametrize("high_spelling", SPELLINGS)
@pytest.mark.parametrize("low_spelling", SPELLINGS)
@pytest.mark.parametrize(("high", "low"), PAIRS)
def test_a_backend_changed_in_a_higher_source_replaces_the_lower_fields(
    sources: Sources, high: str, low: str, high_spelling: str, low_spelling: str
) -> None:
    sources.set_event(low, low_spelling, "backend", "inprocess")
    sources.set_event(low, low_spelling, "queue_size", 77)  # only the in-process bus has it
    sources.set_event(high, high_spelling, "backend", "rabbitmq")
    bus = sources.load().default_event
    assert isinstance(bus, RabbitMQSettings)
    assert bus.exchange_name == "bento.events"


def test_the_same_backend_in_a_higher_source_keeps_the_lower_fields(sources: Sources) -> None:
    sources.set("yaml", "event", "domain", "backend", "rabbitmq")
    sources.set("yaml", "event", "domain", "exchange_name", "from.yaml")
    sources.set("env", "event", "domain", "backend", "rabbitmq")
    sources.set("env", "event", "domain", "prefetch_count", 5)
    domain = sources.load().event_instance("domain")
    assert isinstance(domain, RabbitMQSettings)
    assert (domain.exchange_name, domain.prefetch_count) == ("from.yaml", 5)


def test_backend_replacement_applies_to_every_section_with_a_backend(sources: Sources) -> None:
    sources.set("yaml", "channel", "default", "backend", "redis")
    sources.set("yaml", "channel", "default", "key_prefix", "yaml:")
    sources.set("env", "channel", None, "backend", "memory")
    sources.set("yaml", "mq", "orders", "backend", "rabbitmq")
    sources.set("yaml", "mq", "orders", "prefetch_count", 99)
    sources.set(".env", "mq", "orders", "backend", "redis")
    sources.set("yaml", "cache", "session", "cache_type", "redis")
    sources.set("yaml", "cache", "session", "max_connections", 99)
    sources.set("argument", "cache", "session", "cache_type", "memory")
    sources.set("yaml", "event_store", None, "backend", "clickhouse")
    sources.set("yaml", "event_store", None, "table", "yaml_events")
    sources.set("env", "event_store", None, "backend", "memory")
    settings = sources.load()
    assert (settings.channel["default"].backend, settings.channel["default"].key_prefix) == ("memory", "channel:")
    assert (settings.mq["orders"].backend, settings.mq["orders"].prefetch_count) == ("redis", 10)
    assert (settings.cache["session"].cache_type, settings.cache["session"].max_connections) == ("memory", 10)
    # The YAML's ClickHouse `table` is dropped with its backend (the memory store has no such field).
    assert settings.event_store == MemoryEventStoreSettings()


def test_other_instances_of_the_lower_source_are_kept(sources: Sources) -> None:
    sources.set("yaml", "event", "domain", "backend", "rabbitmq")
    sources.set("yaml", "event", "domain", "exchange_name", "from.yaml")
    sources.set("env", "event", None, "backend", "redis")
    settings = sources.load()
    assert settings.event_backend == "redis"
    assert settings.event_instance("domain").exchange_name == "from.yaml"  # type: ignore[union-attr]


def test_an_instance_given_as_a_settings_object_replaces_the_lower_instance(sources: Sources) -> None:
    sources.set("yaml", "event", "domain", "backend", "rabbitmq")
    sources.set("yaml", "event", "domain", "exchange_name", "from.yaml")
    sources.set("argument", "event", None, "domain", RabbitMQSettings(prefetch_count=3))
    domain = sources.load().event_instance("domain")
    assert isinstance(domain, RabbitMQSettings)
    assert (domain.exchange_name, domain.prefetch_count) == ("bento.events", 3)


def test_errors_name_the_source_that_set_the_value(sources: Sources) -> None:
    sources.set("yaml", "event", "default", "max_attempts", 0)
    with pytest.raises(ConfigurationError) as caught:
        sources.load()
    assert caught.value.problems == [
        "EVENT__DEFAULT__MAX_ATTEMPTS: Input should be greater than or equal to 1 (got 0) "
        "[set by yaml (config/bento.yaml:3) event.default.max_attempts]"
    ]


# -- files that do not parse --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("service:\n  name: x\n  bad: [1, 2\nevent: {}\n", "line 4, column 6"),
        ("service: {name: x}\n\tevent: {}\n", "line 2, column 1"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1"),
    ],
)
def test_a_yaml_file_that_does_not_parse_names_file_line_and_column(text: str, where: str) -> None:
    Path("config").mkdir()
    Path("config/bento.yaml").write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"config/bento.yaml, {where}: not valid YAML")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str")])
def test_a_yaml_file_that_is_not_a_mapping_names_file_line_and_column(text: str, kind: str) -> None:
    Path("config").mkdir()
    Path("config/bento.yaml").write_text(text)
    with pytest.raises(ConfigurationError, match=rf"config/bento.yaml, line 1, column 1: .* not a {kind}$"):
        load_settings()


def test_a_dotenv_line_that_does_not_parse_names_file_and_line() -> None:
    Path(".env").write_text('SERVICE__NAME=ok\nEVENT__URL redis://user:pa55word@host:6379/0\nB="open\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == [".env, line 2", ".env, line 3"]
    assert "pa55word" not in str(caught.value)


def test_a_config_file_that_is_not_utf8_is_a_configuration_error() -> None:
    Path("config").mkdir()
    Path("config/bento.yaml").write_bytes(b"service: {name: \xff}\n")
    with pytest.raises(ConfigurationError, match=r"config/bento\.yaml: not utf-8 text"):
        load_settings()


# -- bento config show --sources ----------------------------------------------------------------


def test_config_show_sources_says_where_each_value_came_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("config").mkdir()
    Path("config/bento.yaml").write_text("service:\n  log_level: DEBUG\nevent:\n  default: {backend: inprocess}\n")
    Path(".env").write_text("SERVICE__NAME=from-dotenv\n")
    monkeypatch.setenv("EVENT__BACKEND", "rabbitmq")
    monkeypatch.setenv("EVENT__DOMAIN__URL", "amqp://bob:pw-one@broker.example:5673/vhost?token=tk-two")
    monkeypatch.setenv("CLICKHOUSE__PASSWORD", "pw-three")
    assert main(["config", "show", "--sources"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert lines["service.name"].split() == ["service.name:", "from-dotenv", "#", ".env", "(.env:1)", "SERVICE__NAME"]
    assert lines["service.log_level"].split() == ["service.log_level:", "DEBUG", "#", "yaml", "(config/bento.yaml:2)"]
    assert lines["event.default.backend"].split()[1:] == ["rabbitmq", "#", "env", "EVENT__BACKEND"]
    assert lines["event.default.exchange_name"].split()[1:] == ["bento.events", "#", "default"]
    assert lines["event.domain.url"].split()[1:] == [
        "amqp://***@broker.example:5673/vhost?token=***",
        "#",
        "env",
        "EVENT__DOMAIN__URL",
    ]
    assert lines["clickhouse.password"].split()[1:] == ["**********", "#", "env", "CLICKHOUSE__PASSWORD"]
    for secret in ("bob", "pw-one", "tk-two", "pw-three"):
        assert secret not in out


def test_config_show_sources_as_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENT__DEFAULT__BACKEND", "redis")
    assert main(["config", "show", "--sources", "--format", "json"]) == 0
    rows = {row["setting"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["event.default.backend"] == {
        "setting": "event.default.backend",
        "value": "redis",
        "source": "env",
        "file": None,
        "key": "EVENT__DEFAULT__BACKEND",
    }
    assert rows["event.default.url"]["value"] == "redis://127.0.0.1:6379/0"
    assert rows["service.name"]["source"] == "default"


def test_explain_settings_gives_what_load_settings_gives(sources: Sources) -> None:
    sources.set("yaml", "event", "domain", "backend", "rabbitmq")
    sources.set("env", "event", None, "backend", "redis")
    sources.set("argument", "service", None, "name", "arg")
    loaded = sources.load()
    assert explain_settings(service={"name": "arg"})[0] == loaded == BentoSettings(service={"name": "arg"})


# -- as a new user tries it -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "instance", "backend"),
    [
        ("EVENT__BACKEND", "default", "rabbitmq"),
        ("EVENT__DEFAULT__BACKEND", "default", "rabbitmq"),
        ("EVENT__DOMAIN__BACKEND", "domain", "redis"),
    ],
)
def test_bento_config_show_in_the_repository_layout_obeys_the_environment(
    tmp_path: Path, variable: str, instance: str, backend: str
) -> None:
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "bento.yaml", tmp_path / "config" / "bento.yaml")
    env = {k: v for k, v in os.environ.items() if k != "BENTO_CONFIG" and "__" not in k}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env[variable] = backend
    result = subprocess.run(
        [sys.executable, "-m", "bento.cli", "config", "show", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event"][instance]["backend"] == backend


def test_the_configuration_page_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "configuration.md").read_text(), re.S)
    assert len(blocks) == 4
    env = {k: v for k, v in os.environ.items() if k != "BENTO_CONFIG" and "__" not in k}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, block + result.stderr
