"""Keys of the Rust Nexus format that Nexus accepts but does not implement: the one table.

An existing ``nexus.toml`` of the Rust project keeps loading: each of these keys is taken out of
the document before validation and named in one warning. To implement a key, add it to the
settings tree (:mod:`nexus.config.model`) and delete its row here; a test fails while a row names
a field the tree has. ``[]`` stands for every table of an array of tables (``[[...]]``).

A section the tree lacks (``[lifecycle]``, ``[fleet]``) accepts only the keys its rows
name; any other key in it is an error, like everywhere else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from nexus.config.checks import key_path, show_value
from nexus.config.tree import is_section

EACH: Final = "[]"

_F19 = "fleet intelligence, Rust F19: no pre-warming recommendations"
_F20 = "model lifecycle, Rust F20: no model load, unload or migration"

#: Dotted key -> why it has no effect. Rows are in the order of the Rust format's sections.
RUST_ONLY: Final = MappingProxyType(
    {
        "server.max_concurrent_requests": "never used by Rust Nexus either; see backends' "
        "max_concurrent",
        "routing.policies[].max_cost_per_request": "never enforced by Rust Nexus either",
        "routing.policies[].fallback_allowed": "never consulted by Rust Nexus either",
        "logging.component_levels": "[logging] level applies to every component",
        "logging.enable_content_logging": "request content is never logged",
        "lifecycle.timeout_ms": _F20,
        "lifecycle.vram_headroom_percent": _F20,
        "lifecycle.vram_buffer_percent": _F20,
        "lifecycle.vram_heuristic_max_gb": _F20,
        "fleet.enabled": _F19,
        "fleet.min_sample_days": _F19,
        "fleet.min_request_count": _F19,
        "fleet.analysis_interval_seconds": _F19,
        "fleet.max_recommendations": _F19,
    }
)


@dataclass(frozen=True)
class Accepted:
    """What :func:`accept_rust_keys` found in a document."""

    document: dict[str, Any]  #: the document without the accepted keys and Rust-only sections
    keys: tuple[str, ...]  #: the rows of :data:`RUST_ONLY` the document sets, in table order
    problems: tuple[str, ...]  #: unknown keys in Rust-only sections, such sections not tables


def warning(key: str) -> str:
    """The warning for a row of :data:`RUST_ONLY` that a document sets."""
    return (
        f"{key}: accepted from the Rust Nexus format but not implemented, so it has no effect "
        f"({RUST_ONLY[key]})"
    )


def accept_rust_keys(document: Mapping[str, Any]) -> Accepted:
    """Take the keys of :data:`RUST_ONLY` out of a parsed TOML document (a copy; any shape).

    Sections the settings tree lacks are removed whole; a key in one that no row names is a
    problem (one line starting with its key path). Everything else is left for validation.
    """
    rest = copy.deepcopy(dict(document))
    keys = tuple(key for key in RUST_ONLY if _remove(rest, _parts(key)))
    problems = [
        line
        for section, known in _rust_sections().items()
        for line in _take_section(rest, section, known)
    ]
    return Accepted(rest, keys, tuple(problems))


def accepted_under(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    """Names the rows of :data:`RUST_ONLY` have directly under ``loc`` (a list index matches
    ``[]``), in table order, for "allowed here" lists; some may be sections of the tree too."""
    where = tuple(EACH if isinstance(part, int) else part for part in loc)
    names: dict[str, None] = {}
    for key in RUST_ONLY:
        parts = _parts(key)
        if parts[: len(where)] == where and len(parts) > len(where):
            names[parts[len(where)]] = None
    names.pop(EACH, None)
    return tuple(names)


def _parts(key: str) -> tuple[str, ...]:
    return tuple(key.replace(EACH, "." + EACH).split("."))


def _remove(node: Any, parts: tuple[str, ...]) -> bool:
    """Delete ``parts`` from ``node`` (in every table of an array at ``[]``); whether it was set."""
    head, tail = parts[0], parts[1:]
    if head == EACH:
        return isinstance(node, list) and any([_remove(item, tail) for item in node])
    if not isinstance(node, dict) or head not in node:
        return False
    if tail:
        return _remove(node[head], tail)
    del node[head]
    return True


def _rust_sections() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each section of the table that the settings tree lacks, and the names it accepts."""
    sections: dict[tuple[str, ...], tuple[str, ...]] = {}
    for key in RUST_ONLY:
        *parent, name = _parts(key)
        if parent and EACH not in parent and not is_section(tuple(parent)):
            sections[tuple(parent)] = (*sections.get(tuple(parent), ()), name)
    return sections


def _take_section(
    document: dict[str, Any], section: tuple[str, ...], names: tuple[str, ...]
) -> list[str]:
    container: Any = document
    for part in section[:-1]:
        container = container.get(part) if isinstance(container, dict) else None
    if not isinstance(container, dict) or section[-1] not in container:
        return []
    value = container.pop(section[-1])
    known = ", ".join(names)
    if not isinstance(value, dict):
        where = key_path(*section)
        return [f"{where}: {show_value(value)} is not allowed (must be a table of: {known})"]
    return [f"{key_path(*section, name)}: unknown key (allowed here: {known})" for name in value]
