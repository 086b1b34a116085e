"""Load the configuration once, at the edge: TOML file < ``NEXUS_*`` environment < CLI flags.

Every problem becomes one line naming where it came from (the file, or the environment variable
or flag that set the value), the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from nexus.config.checks import key_path, show_value
from nexus.config.model import NexusConfig
from nexus.config.rust_keys import accept_rust_keys, accepted_under, warning
from nexus.config.tree import inner_model, walk
from nexus.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("nexus.toml")

#: Settings that an environment variable (``NEXUS_<NAME>``) can set, and a CLI flag when the
#: command has one (``workers`` and ``redis_url`` are environment-only).
OVERRIDABLE: dict[str, tuple[str, str]] = {
    "host": ("server", "host"),
    "port": ("server", "port"),
    "log_level": ("logging", "level"),
    "log_format": ("logging", "format"),
    "discovery": ("discovery", "enabled"),
    "health_check": ("health_check", "enabled"),
    "workers": ("server", "workers"),
    "redis_url": ("state", "redis_url"),
}


class EnvOverrides(BaseSettings):
    """The ``NEXUS_*`` environment variables (README, "Configuration"), read as text; the
    settings tree validates them like any other value."""

    model_config = SettingsConfigDict(env_prefix="NEXUS_", extra="ignore", frozen=True)

    config: str | None = None
    host: str | None = None
    port: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    discovery: str | None = None
    health_check: str | None = None
    workers: str | None = None
    redis_url: str | None = None


def config_path(explicit: Path | None) -> tuple[Path, bool]:
    """The file to load and whether the user named it (flag or ``NEXUS_CONFIG``)."""
    if explicit is not None:
        return explicit, True
    from_env = EnvOverrides().config
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def load_config(
    path: Path | None = None,
    *,
    cli: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> NexusConfig:
    """Load, merge and validate the configuration.

    ``path`` None means ``NEXUS_CONFIG`` or ``./nexus.toml``; a missing default file is zero-config,
    a missing file named explicitly is an error. ``cli`` maps names of :data:`OVERRIDABLE` to flag
    values (None = not given). Raises :class:`ConfigError` with one line per problem. Each line
    of a valid file that deserves a warning goes to ``warn`` (default: the log).
    """
    file, explicit = config_path(path)
    rust = accept_rust_keys(_read_toml(file, explicit))
    raw = rust.document
    origins: dict[tuple[str | int, ...], str] = {}
    env = EnvOverrides()
    for name, section_key in OVERRIDABLE.items():
        value = getattr(env, name)
        if value is not None:
            _set(raw, section_key, value, origins, f"environment NEXUS_{name.upper()}")
    for name, value in (cli or {}).items():
        if value is not None:
            _set(raw, OVERRIDABLE[name], value, origins, "--" + name.replace("_", "-"))
    problems = [f"{file}: {line}" for line in rust.problems]
    try:
        config = NexusConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([*problems, *_problems(exc, str(file), origins)]) from None
    if problems:
        raise ConfigError(problems)
    for key in rust.keys:
        (warn or _log_warning)(f"{file}: {warning(key)}")
    return config


def _log_warning(line: str) -> None:
    logger.warning("{}", line)


def _read_toml(file: Path, explicit: bool) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise ConfigError([f"{file}: file not found"]) from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: TOML syntax error: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot be read: {exc}"]) from None


def _set(
    raw: dict[str, Any],
    section_key: tuple[str, str],
    value: Any,
    origins: dict[tuple[str | int, ...], str],
    origin: str,
) -> None:
    section, key = section_key
    table = raw.setdefault(section, {})
    if isinstance(table, dict):
        table[key] = value
        origins[section_key] = origin


def _problems(
    exc: ValidationError, file: str, origins: Mapping[tuple[str | int, ...], str]
) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = origins.get(loc, file)
        if not loc and error["type"] == "value_error":  # cross-field rules, already one per line
            lines += [f"{where}: {line}" for line in _message(error).splitlines()]
        else:
            lines.append(f"{where}: {key_path(*loc)}: {_detail(error, loc)}")
    return lines


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _detail(error: Any, loc: tuple[str | int, ...]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        fields = _parent_model(loc[:-1]).model_fields
        names = [*fields, *(name for name in accepted_under(loc[:-1]) if name not in fields)]
        return f"unknown key (allowed here: {', '.join(names)})"
    if kind in ("list_type", "tuple_type") and isinstance(value, dict):
        entry = _entry_model(loc)
        if entry is not None:
            return _table_for_array(loc, value, entry)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{show_value(value)} is not allowed ({_range(_field_at(loc))})"
    if kind in ("literal_error", "enum"):
        return f"{show_value(value)} is not allowed ({ctx.get('expected', '')})"
    if kind == "string_pattern_mismatch":
        return f"{show_value(value)} is not allowed (must match {ctx.get('pattern')})"
    if kind == "value_error":
        return _message(error)
    message = str(error["msg"])
    return f"{show_value(value)} is not allowed ({message[:1].lower()}{message[1:]})"


def _entry_model(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model of each entry when ``loc`` is an array of tables, such as ``backends``."""
    info = _field_at(loc)
    return inner_model(info.annotation) if info else None


def _table_for_array(
    loc: tuple[str | int, ...], value: dict[str, Any], entry: type[BaseModel]
) -> str:
    """``[routing.policies.default]`` where ``[[routing.policies]]`` is meant."""
    path = key_path(*loc)
    required = [name for name, info in entry.model_fields.items() if info.is_required()]
    keys = f" with {', '.join(required)}" if required else ""
    written = f"instead of [{key_path(*loc, next(iter(value)))}], " if value else ""
    return f"a table is not allowed ({written}write each entry as its own [[{path}]] table{keys})"


def _parent_model(loc: tuple[str | int, ...]) -> type[BaseModel]:
    return walk(loc)[0]


def _field_at(loc: tuple[str | int, ...]) -> FieldInfo | None:
    return walk(loc)[1]


def _range(info: FieldInfo | None) -> str:
    bounds: dict[str, Any] = {}
    for item in info.metadata if info else ():
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                bounds[name] = getattr(item, name)
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']} to {bounds['le']}"
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return ", ".join(f"{words[name]} {bound}" for name, bound in bounds.items()) or "out of range"
