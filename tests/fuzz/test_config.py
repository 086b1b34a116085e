"""Config fuzzing: TOML documents built from the real settings tree (introspected, so new fields
are fuzzed too), each with one key given a wrong type, an out-of-range value or an unknown
sibling, plus documents of arbitrary values and arbitrary text.

``load_config`` must raise :class:`~nexus.errors.ConfigError` and nothing else, one line per
problem starting with the file and naming a key path, the mutated key's path among them;
``nexus config check`` must exit 2 with those lines on stderr and nothing on stdout.
"""

from __future__ import annotations

import datetime
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from typer.testing import CliRunner

from nexus.cli import app
from nexus.config import load_config
from nexus.config.checks import key_path
from nexus.config.model import NexusConfig
from nexus.errors import ConfigError
from tests.fuzz.counts import COUNTS
from tests.fuzz.counts import EXAMPLES as FUZZ_EXAMPLES

EXAMPLES = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
)
Path_ = tuple[str | int, ...]


def base() -> dict[str, Any]:
    """A valid document holding one element of every list of tables and of every price map."""
    return {
        "discovery": {"enabled": False},
        "routing": {"policies": [{"model_pattern": "*"}]},
        "pricing": {"gpt-x": {"input_per_1k": 1.0, "output_per_1k": 2.0}},
        "backends": [{"name": "a", "url": "http://127.0.0.1:9", "type": "vllm"}],
        "clients": [{"name": "c", "api_key_env": "C_KEY", "models": ["*"]}],
    }


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def leaves(model: type[BaseModel], prefix: Path_, document: Any) -> list[tuple[Path_, FieldInfo]]:
    """Every field under ``model`` reachable in ``document`` (the base): its path and info."""
    out: list[tuple[Path_, FieldInfo]] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        inner = _model_of(info.annotation)
        value = document.get(name) if isinstance(document, dict) else None
        out.append((path, info))
        if inner is None:
            continue
        if isinstance(value, list) and value:
            out += leaves(inner, (*path, 0), value[0])
        elif isinstance(value, dict) and inner is not model and name == "pricing":
            key = next(iter(value))
            out += leaves(inner, (*path, key), value[key])
        elif not isinstance(value, list):
            out += leaves(inner, path, value or {})
    return out


LEAVES = leaves(NexusConfig, (), base())


def put(document: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    target: Any = document
    for part in path[:-1]:
        if isinstance(part, str):
            target = target.setdefault(part, {})
        else:
            target = target[part]
    target[path[-1]] = value
    return document


# -- TOML -------------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(type(value))


def toml(document: dict[str, Any]) -> str:
    """Every top-level key as one line with inline tables (valid TOML, whatever the nesting)."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in document.items())


# -- strategies -------------------------------------------------------------------------------

#: Keys without control characters: those are test_a_key_with_control_characters_stays_on_one_line.
keys = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12
)
toml_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
    | st.datetimes(timezones=st.none())
    | st.dates()
    | st.times()
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
tables = st.dictionaries(keys, toml_values, min_size=1, max_size=2)


def wrong_values(info: FieldInfo) -> st.SearchStrategy[Any]:
    """Values no field of this kind accepts: a table for a scalar or a list of scalars, a
    scalar for a table, and numbers outside the field's bounds."""
    inner = _model_of(info.annotation)
    text = str(info.annotation)
    if inner is not None or text.startswith("dict"):
        return st.sampled_from([7, "text", [1, 2], True])
    options: list[st.SearchStrategy[Any]] = [tables, st.lists(tables, min_size=1, max_size=2)]
    for item in info.metadata:
        for name, beyond in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            bound = getattr(item, name, None)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                options.append(st.just(bound + beyond if name in ("le", "lt") else bound - 1))
    return st.one_of(options)


@st.composite
def invalid_documents(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A base document with one key made invalid, and the key path that must be named."""
    document = base()
    path, info = draw(st.sampled_from(LEAVES))
    model = _model_of(info.annotation)
    if draw(st.booleans()) and model is not None:
        unknown = draw(keys.filter(lambda key: key not in model.model_fields))
        parent = path if not isinstance(_nested(document, path), list) else (*path, 0)
        put(document, (*parent, unknown), draw(toml_values))
        return document, key_path(*parent, unknown)
    put(document, path, draw(wrong_values(info)))
    return document, key_path(*path)


def _nested(document: dict[str, Any], path: Path_) -> Any:
    target: Any = document
    for part in path:
        target = target.get(part) if isinstance(target, dict) else target[part]
        if target is None:
            return None
    return target


@st.composite
def arbitrary_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The base with arbitrary values at arbitrary known paths: valid or not, who knows."""
    document = base()
    for path, _ in draw(st.lists(st.sampled_from(LEAVES), min_size=1, max_size=4)):
        try:
            put(document, path, draw(toml_values))
        except (TypeError, KeyError, IndexError, AttributeError):
            pass  # an earlier value replaced a table on this path
    return document


# -- the tests --------------------------------------------------------------------------------


def names(line: str, key: str) -> bool:
    """Whether a problem line is about ``key`` or something inside it."""
    return line.startswith(key) and line[len(key) : len(key) + 1] in (":", "[", ".")


def problems_of(tmp: Path, text: str) -> list[str]:
    path = tmp / "nexus.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = list(raised.value.problems)
    assert lines and all(line.startswith(f"{path}: ") for line in lines), lines
    assert all(len(line.splitlines()) == 1 for line in lines), "one line per problem"
    return [line.removeprefix(f"{path}: ") for line in lines]


def test_the_base_document_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(toml(base()), encoding="utf-8")
    assert load_config(path).backends[0].name == "a"
    assert len(LEAVES) > 40, "the walk found the settings tree"


@given(case=invalid_documents())
@EXAMPLES
def test_an_invalid_key_is_named(tmp_path_factory: pytest.TempPathFactory, case: Any) -> None:
    COUNTS["config: one invalid key"] += 1
    document, expected = case
    lines = problems_of(tmp_path_factory.mktemp("cfg"), toml(document))
    assert any(names(line, expected) for line in lines), (expected, lines)


@given(document=arbitrary_documents())
@EXAMPLES
def test_arbitrary_values_load_or_give_config_errors(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]
) -> None:
    COUNTS["config: arbitrary values"] += 1
    path = tmp_path_factory.mktemp("cfg") / "nexus.toml"
    path.write_text(toml(document), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems and all(": " in line for line in exc.problems)


@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@EXAMPLES
def test_arbitrary_bytes_give_config_errors(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    COUNTS["config: arbitrary bytes"] += 1
    path = tmp_path_factory.mktemp("cfg") / "nexus.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems


@given(case=invalid_documents())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_config_check_exits_2_with_the_problems(
    tmp_path_factory: pytest.TempPathFactory, case: Any
) -> None:
    COUNTS["config check runs"] += 1
    document, expected = case
    path = tmp_path_factory.mktemp("cfg") / "nexus.toml"
    path.write_text(toml(document), encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = [line.removeprefix(f"error: {path}: ") for line in result.stderr.splitlines()]
    assert any(names(line, expected) for line in lines), (expected, result.stderr)


def test_the_real_command_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    document = put(base(), ("backends", 0, "tier"), 9)
    path.write_text(toml(document), encoding="utf-8")
    nexus = str(Path(sys.executable).with_name("nexus"))
    result = subprocess.run(
        [nexus, "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"error: {path}: backends[0].tier: 9 is not allowed (1 to 5)" in result.stderr


def test_a_key_with_control_characters_stays_on_one_line(tmp_path: Path) -> None:
    document = put(base(), ("server", "bad\nerror: forged\x1b[31m"), 1)
    lines = problems_of(tmp_path, toml(document))
    assert not any("\x1b" in line for line in lines)
