"""The import direction of the ``nexus`` package: each module imports only from lower layers.

The layers, lowest first (a layer may hold several packages; they must not import one another,
so that no two packages form a cycle)::

    foundation     nexus, errors, headers       the version, exceptions, response headers
    config         config                       the settings tree, backend kinds
    prices         pricing, tokens              offline prices and token counts
    backends       backends                     registry, snapshots, health transitions
    probing        health, discovery            probes, the health loop, mDNS
    routing        routing                      requirements, policy, the pure planner
    upstream       upstream                     the byte relay, LiteLLM translation
    observability  observability                request events, metrics, stats, logs
    state          state                        state shared between replicas
    gateway        gateway                      the request's way: plan, attempts, outcomes
    web            dashboard, then api          HTTP: dialects, routes, middlewares
    app            app                          create_app
    process        supervisor, serving, server  worker processes, uvicorn, `nexus serve`
    cli            cli, then __main__           the command line

A module's imports anywhere in it count (inside functions and under ``TYPE_CHECKING`` too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nexus

PACKAGE = Path(nexus.__file__).parent

#: Top-level names of ``nexus`` (a package or a module), lowest layer first.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "__init__ errors headers",
        "config",
        "pricing tokens",
        "backends",
        "health discovery",
        "routing",
        "upstream",
        "observability",
        "state",
        "gateway",
        "dashboard",
        "api",
        "app",
        "supervisor",
        "serving",
        "server",
        "cli",
        "__main__",
    )
)
RANK = {name: index for index, layer in enumerate(LAYERS) for name in layer}


def top_level(module: str) -> str:
    """``nexus.routing.planner`` -> ``routing``; ``nexus(.__init__)`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every ``nexus`` import in ``tree`` (of ``module``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: -node.level]
                base = ".".join([*package, *([base] if base else [])])
            if base == "nexus":  # `from nexus import tokens` imports the module nexus.tokens
                found += [(node.lineno, _from_root(alias.name)) for alias in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "nexus"]


def _from_root(name: str) -> str:
    """What ``from nexus import name`` imports: a submodule, or a name of ``nexus/__init__``."""
    is_module = (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()
    return f"nexus.{name}" if is_module else "nexus"


def violations(source: str, module: str, where: str) -> list[str]:
    """Every import of ``module`` (its ``source``) that goes up a layer or sideways into
    another package of the same layer."""
    own = top_level(module)
    problems = []
    for line, target in imported_modules(ast.parse(source), module):
        other = top_level(target)
        if other == own:
            continue
        if other not in RANK or own not in RANK:
            problems.append(f"{where}:{line}: {own} -> {other}: not in LAYERS")
        elif RANK[other] > RANK[own]:
            problems.append(f"{where}:{line}: {own} -> {other}: imports a higher layer")
        elif RANK[other] == RANK[own]:
            problems.append(f"{where}:{line}: {own} -> {other}: same layer, another package")
    return problems


def module_name(path: Path) -> str:
    """``nexus/routing/planner.py`` -> ``nexus.routing.planner``; a package's ``__init__.py``
    keeps its ``__init__`` so that its relative imports resolve against the package itself."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_every_import_goes_down_the_layers() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE.parent))
        problems += violations(path.read_text(), module_name(path), where)
    assert not problems, "imports against the layer order:\n" + "\n".join(problems)


def test_every_module_and_package_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert modules | packages == set(RANK)


def test_the_checker_sees_a_reversed_import_anywhere_in_a_module() -> None:
    source = "import typing\nif typing.TYPE_CHECKING:\n    from nexus.routing import plan\n"
    assert violations(source, "nexus.config.x", "x.py") == [
        "x.py:3: config -> routing: imports a higher layer"
    ]
    inside = "def f():\n    from ..gateway import Gateway\n"
    assert violations(inside, "nexus.routing.planner", "p.py") == [
        "p.py:2: routing -> gateway: imports a higher layer"
    ]


def test_the_checker_sees_a_sideways_import_and_allows_its_own_package() -> None:
    assert violations("from nexus.discovery import mdns\n", "nexus.health.x", "h.py") == [
        "h.py:1: health -> discovery: same layer, another package"
    ]
    own = "from nexus.routing.policy import RoutingPolicy\nfrom nexus import errors\n"
    assert violations(own, "nexus.routing.planner", "p.py") == []
    assert violations("from nexus import tokens\n", "nexus.pricing", "q.py") == [
        "q.py:1: pricing -> tokens: same layer, another package"
    ]


def test_the_checker_resolves_a_package_init_s_relative_imports_against_the_package() -> None:
    source = "from . import planner\nfrom .policy import RoutingPolicy\nfrom .. import gateway\n"
    assert violations(source, module_name(PACKAGE / "routing" / "__init__.py"), "r.py") == [
        "r.py:3: routing -> gateway: imports a higher layer"
    ]
    assert violations("from . import tokens\n", module_name(PACKAGE / "__init__.py"), "n.py") == [
        "n.py:1: __init__ -> tokens: imports a higher layer"
    ]
