"""The Portkey AI gateway (Node) for comparison, installed with npm into ``bench/.portkey``.

``bench/portkey-package.json`` pins ``@portkey-ai/gateway`` 1.15.2 and, with npm ``overrides``,
``@hono/node-server`` 1.14.1: the gateway asks for ``^1.3.3``, and the newer ones that resolves to
break its streaming (Portkey-AI/gateway#1389). The folder is (re)installed when that file changes
(a hash is kept beside it), with ``--ignore-scripts``: the package's one install script runs
``patch-package``, which has no patch to apply (the package ships none).

Started as ``npx @portkey-ai/gateway`` starts it: ``node build/start-server.js --port=N``, which
has no host option and listens on every interface, so ``portkey-listen-localhost.cjs`` is
preloaded (``node --require``) to turn every TCP ``listen`` into one on 127.0.0.1. Otherwise its
defaults: not headless (the log console at ``/public/`` is served), no cache, no retries. Ready is
its ``GET /`` 200 ("AI Gateway says hey!").

A request names the provider and where it is in headers (the gateway has no config file of
upstreams): ``x-portkey-provider: openai``, ``x-portkey-custom-host: http://127.0.0.1:<port>/v1``
(127.0.0.1 is a trusted custom host by default), and the ``Authorization`` bearer that the other
targets get, forwarded to the upstream as the provider key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from bench import procs, venvs

HERE = Path(__file__).resolve().parent
FOLDER = HERE / ".portkey"
PACKAGE_JSON = HERE / "portkey-package.json"
PRELOAD = HERE / "portkey-listen-localhost.cjs"
MARKER = FOLDER / ".bench-package.sha256"
MODULES = FOLDER / "node_modules"
ENTRY = MODULES / "@portkey-ai" / "gateway" / "build" / "start-server.js"
INSTALL_TIMEOUT = 600
READY_TIMEOUT = 60.0


class PortkeyUnavailable(RuntimeError):
    """The Portkey gateway could not be installed or started; the message says why."""


def _wanted_hash() -> str:
    return hashlib.sha256(PACKAGE_JSON.read_bytes()).hexdigest()


def pinned() -> dict[str, str]:
    """What ``portkey-package.json`` pins: the gateway and every override, name -> version."""
    package = json.loads(PACKAGE_JSON.read_text())
    return {**package.get("dependencies", {}), **package.get("overrides", {})}


def installed(name: str) -> str | None:
    """The version of ``name`` in ``bench/.portkey/node_modules`` (None when missing)."""
    try:
        manifest = json.loads((MODULES / name / "package.json").read_text())
    except (OSError, ValueError):
        return None
    found = manifest.get("version")
    return found if isinstance(found, str) else None


def _check_versions() -> None:
    wrong = {name: installed(name) for name, want in pinned().items() if installed(name) != want}
    if wrong:
        raise PortkeyUnavailable(f"npm installed {wrong}, not the pinned {pinned()}")


def ensure_installed(log: Path) -> None:
    """npm-install the pinned gateway into ``bench/.portkey`` unless it is there already."""
    npm = shutil.which("npm")
    if npm is None:
        raise PortkeyUnavailable("npm is not on PATH")
    wanted = _wanted_hash()
    if ENTRY.exists() and MARKER.exists() and MARKER.read_text().strip() == wanted:
        return
    print(f"installing the Portkey gateway into {FOLDER} (once; output in {log}) ...", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(FOLDER, ignore_errors=True)
    FOLDER.mkdir(parents=True)
    shutil.copyfile(PACKAGE_JSON, FOLDER / "package.json")
    step = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev"]
    venvs.run_steps([step], log, INSTALL_TIMEOUT, PortkeyUnavailable, cwd=FOLDER)
    if not ENTRY.exists():
        raise PortkeyUnavailable(f"installed, but {ENTRY} is missing")
    _check_versions()
    MARKER.write_text(wanted + "\n")


def version() -> str | None:
    """The installed gateway's version, and the node server's (``1.15.2+node-server-1.14.1``)."""
    gateway, server = installed("@portkey-ai/gateway"), installed("@hono/node-server")
    return None if gateway is None else f"{gateway}+node-server-{server}"


def headers(upstream_port: int) -> tuple[tuple[str, str], ...]:
    """What names the provider and the upstream in every request to Portkey."""
    return (
        ("x-portkey-provider", "openai"),
        ("x-portkey-custom-host", f"http://127.0.0.1:{upstream_port}/v1"),
    )


def argv(node: str, port: int) -> list[str]:
    return [node, "--require", str(PRELOAD), str(ENTRY), f"--port={port}"]


def start(workdir: Path, upstream_port: int) -> tuple[procs.Proc, int]:
    """Install if needed, start the gateway on 127.0.0.1 and wait for ``GET /``."""
    node = shutil.which("node")
    if node is None:
        raise PortkeyUnavailable("node is not on PATH")
    ensure_installed(workdir / "portkey-install.log")
    _check_versions()
    port = procs.free_port()
    args = argv(node, port)
    url = f"http://127.0.0.1:{port}/"
    proc = procs.start_ready("portkey", args, workdir / "portkey.log", url, READY_TIMEOUT,
                             PortkeyUnavailable)  # fmt: skip
    return proc, port
