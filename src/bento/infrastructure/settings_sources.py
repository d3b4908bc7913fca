"""Where settings come from, and which source wins: arguments > environment > `.env` > YAML > defaults.

pydantic-settings merges its sources key by key, which breaks that order once named instances
are involved. The bare `EVENT__FIELD` and `EVENT__DEFAULT__FIELD` land at different keys, so the
merge cannot see that they name the same field (the shipped YAML's explicit `default` instance
beat a bare variable from the environment), and a higher source that changes an instance's
backend inherited the other backend's fields from the lower one. `LayeredSource` therefore reads
each source on its own, rewrites it to the one spelling `{section: {instance: {field: value}}}`
and merges the layers itself, lowest first: a higher layer wins field by field, except that a
mapping naming a different backend than the lower layer's replaces it instead of merging. It
records which layer set every value (`bento config show --sources`).

A configuration file that cannot be read is a ConfigurationError naming the file and the line
(and, for YAML, the column), never a traceback and never a silently dropped line.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

import yaml
from dotenv.parser import parse_stream
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    YamlConfigSettingsSource,
)

from bento.application.errors import ConfigurationError
from bento.infrastructure import backends

CONFIG_FILE_ENV = "BENTO_CONFIG"
DEFAULT_CONFIG_FILE = Path("config/bento.yaml")
DOTENV_FILE = Path(".env")
DEFAULT_INSTANCE = "default"
# Keys that choose which model validates a mapping; a change of value starts the mapping afresh.
BACKEND_KEYS = ("backend", "cache_type")
_MAX_QUOTE = 200

SettingPath = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Which source set a value, the file it sits in, and the key as the user spelled it there."""

    kind: str  # "argument", "env", ".env", "yaml" or "default"
    file: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f" ({self.file})" if self.file else ""
        return f"{self.kind}{where} {self.key}" if self.key else f"{self.kind}{where}"


DEFAULT_ORIGIN = Origin("default")


@dataclass(frozen=True)
class Layer:
    """One source in the order of precedence, with how its keys are spelled for `Origin`."""

    kind: str
    source: PydanticBaseSettingsSource
    file: str | None = None

    def origin(self, spelled: SettingPath) -> Origin:
        env = self.kind in ("env", ".env")
        key = "__".join(part.upper() for part in spelled) if env else ".".join(spelled)
        line = getattr(self.source, "lines", {}).get(tuple(part.lower() for part in spelled))
        return Origin(self.kind, f"{self.file}:{line}" if line else self.file, key)


class LayeredSource(PydanticBaseSettingsSource):
    """The one source BentoSettings reads: every layer, merged in order (see the module docstring)."""

    def __init__(self, settings_cls: type[BaseSettings], layers: Sequence[Layer]) -> None:
        super().__init__(settings_cls)
        self.layers = list(layers)  # highest precedence first
        self.named_sections = frozenset(
            name for name, field in settings_cls.model_fields.items() if _is_named_section(field)
        )
        self.origins: dict[SettingPath, Origin] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads whole layers instead

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        self.origins = {}
        for layer in reversed(self.layers):
            data, spelled = _one_spelling(layer.source(), self.named_sections)
            _overlay(merged, data, (), self.origins, layer, spelled)
        return merged


def layered_source(
    settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource, env: PydanticBaseSettingsSource
) -> LayeredSource:
    """Arguments, environment, `.env` (if present) and the YAML file (if present), in that order."""
    layers = [Layer("argument", init), Layer("env", env)]
    dotenv = DotEnvFileSource(settings_cls, env_file=DOTENV_FILE)
    layers.append(Layer(".env", dotenv, str(DOTENV_FILE)))
    config_file = config_file_path()
    if config_file is not None:
        layers.append(Layer("yaml", YamlFileSource(settings_cls, yaml_file=config_file), str(config_file)))
    return LayeredSource(settings_cls, layers)


def config_file_path() -> Path | None:
    """`BENTO_CONFIG` (which must exist) or `config/bento.yaml` in the working directory, if there."""
    if CONFIG_FILE_ENV in os.environ:
        path = Path(os.environ[CONFIG_FILE_ENV])
        if not path.is_file():
            raise ConfigurationError([f"{CONFIG_FILE_ENV}={path} does not exist"])
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def origin_of(origins: Mapping[SettingPath, Origin], path: SettingPath) -> Origin:
    """The origin of `path`, or of the nearest enclosing value that a source gave whole."""
    for end in range(len(path), 0, -1):
        found = origins.get(path[:end])
        if found is not None:
            return found
    return DEFAULT_ORIGIN


# -- the files ----------------------------------------------------------------------------------


class YamlFileSource(YamlConfigSettingsSource):
    """The YAML file; one that does not parse, or is not a mapping, names file, line and column."""

    lines: dict[SettingPath, int]  # line of each key, for `Origin`

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        text = _read_text(file_path, self.yaml_file_encoding)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:  # an empty file
                return {}
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)[:_MAX_QUOTE]
            raise ConfigurationError([f"{file_path}{where}: not valid YAML: {problem}"]) from None
        except yaml.YAMLError as exc:
            raise ConfigurationError([f"{file_path}: not valid YAML: {str(exc)[:_MAX_QUOTE]}"]) from None
        finally:
            loader.dispose()
        if data is None:  # only comments, or a lone `null`
            return {}
        if not isinstance(data, dict):
            start = node.start_mark
            raise ConfigurationError(
                [
                    f"{file_path}, line {start.line + 1}, column {start.column + 1}: the file must be a mapping "
                    f"of sections (service:, event:, ...), not a {type(data).__name__}"
                ]
            )
        self.lines = dict(_key_lines(node, ()))
        return data


class DotEnvFileSource(DotEnvSettingsSource):
    """`.env`; a line that does not parse is an error naming file and line, not a dropped setting."""

    lines: dict[SettingPath, int]  # line of each variable, for `Origin`

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        text = _read_text(file_path, self.env_file_encoding)
        bindings = list(parse_stream(io.StringIO(text)))
        self.lines = {tuple(b.key.lower().split("__")): b.original.line for b in bindings if b.key}
        broken = [binding.original.line for binding in bindings if binding.error]
        if broken:
            # The line itself is not quoted: it may hold a password.
            raise ConfigurationError(
                [
                    f"{file_path}, line {line}: cannot be parsed; write NAME=value (quote values with spaces)"
                    for line in broken
                ]
            )
        return super()._read_env_file(file_path)


def _key_lines(node: yaml.Node, path: SettingPath) -> Iterator[tuple[SettingPath, int]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value).lower())
            yield here, key.start_mark.line + 1
            yield from _key_lines(value, here)


def _read_text(path: Any, encoding: str | None) -> str:
    try:
        return str(path.read_text(encoding=encoding or "utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigurationError([f"{path}: not {exc.encoding} text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigurationError([f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"]) from None


# -- one spelling, then the merge ---------------------------------------------------------------


def _is_named_section(field: FieldInfo) -> bool:
    return get_origin(field.annotation) is dict


def _one_spelling(
    data: Mapping[str, Any], named_sections: frozenset[str]
) -> tuple[dict[str, Any], dict[SettingPath, SettingPath]]:
    """Rewrite one source so each named section is `{instance: {field: value}}`.

    Returns the data and, for every rewritten leaf, the key path the source spelled it with. In a
    named section a plain value is a field of instance `default`; when one source gives a field
    both ways, the explicit `DEFAULT` spelling wins.
    """
    out: dict[str, Any] = {}
    spelled: dict[SettingPath, SettingPath] = {}
    for section, value in data.items():
        if section not in named_sections or not isinstance(value, Mapping):
            out[section] = value
            continue
        instances: dict[str, dict[str, Any]] = {}
        # An instance given as a settings object (an argument) is all of its fields.
        value = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
        bare = {field: v for field, v in value.items() if not isinstance(v, Mapping)}
        if bare:
            instances[DEFAULT_INSTANCE] = dict(bare)
            spelled.update({(section, DEFAULT_INSTANCE, field): (section, field) for field in bare})
        for name, fields in value.items():
            if isinstance(fields, Mapping):
                instance = instances.setdefault(name.lower(), {})
                instance.update(fields)
                for path, _ in _leaves(fields, ()):
                    spelled[(section, name.lower(), *path)] = (section, name, *path)
        out[section] = instances
    return out, spelled


def _overlay(
    base: dict[str, Any],
    top: Mapping[str, Any],
    path: SettingPath,
    origins: dict[SettingPath, Origin],
    layer: Layer,
    spelled: Mapping[SettingPath, SettingPath],
) -> None:
    for key, value in top.items():
        here = (*path, key)
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict) and not _changes_backend(current, value):
            _overlay(current, value, here, origins, layer, spelled)
            continue
        for stale in [p for p in origins if p[: len(here)] == here]:
            del origins[stale]
        base[key] = _plain(value)
        for leaf, _ in _leaves(value, here):
            origins[leaf] = layer.origin(spelled.get(leaf, leaf))


def _changes_backend(lower: Mapping[str, Any], higher: Mapping[str, Any]) -> bool:
    return any(
        key in lower and key in higher and not (_backend_name(lower[key]) & _backend_name(higher[key]))
        for key in BACKEND_KEYS
    )


def _backend_name(value: Any) -> frozenset[str]:
    """The spellings of one backend (its catalogue row's name and aliases): two spellings of
    one backend never count as a change."""
    name = str(value).strip().lower()
    for row in (row for catalogue in backends.CATALOGUES.values() for row in catalogue):
        spellings = frozenset((row.name, *row.aliases))
        if name in spellings:
            return spellings
    return frozenset((name,))


def _leaves(value: Any, path: SettingPath) -> Iterator[tuple[SettingPath, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, str(key)))
    else:
        yield path, value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(inner) for key, inner in value.items()}
    return copy.deepcopy(value)
