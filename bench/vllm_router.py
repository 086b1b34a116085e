"""vllm-router (Rust, the vLLM project's router) for comparison, in its own virtual environment
``bench/.venv-vllm-router``.

The PyPI wheel ``vllm-router`` ships the Rust server as a Python extension and a ``vllm-router``
command (``vllm_router.launch_router``): the process stays one process, renamed ``vllm::router``.
The venv is built once and rebuilt when :data:`REQUIREMENT` changes (a hash is kept beside it).

Started as a user would: ``vllm-router --host 127.0.0.1 --port N --worker-urls <upstream>``, the
default policy (``cache_aware``), default retries, circuit breaker and health checks (``GET
/health`` on the worker every 60 s: the fake upstream answers it). Its Prometheus exporter is on
by default on 127.0.0.1:29000; it gets a free port instead, so that two runs never collide. Before
it listens it waits until every worker answers ``/health``; ready is its ``/readiness`` 200.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bench import procs, venvs

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-vllm-router"
REQUIREMENT = "vllm-router==0.1.17"
INSTALL_TIMEOUT = 900
READY_TIMEOUT = 60.0


class VLLMRouterUnavailable(RuntimeError):
    """vllm-router could not be installed or started; the message says why."""


def _wanted_hash() -> str:
    return hashlib.sha256(REQUIREMENT.encode()).hexdigest()


def ensure_venv(log: Path) -> Path:
    """Create or refresh the venv; the path of its ``vllm-router`` command."""
    return venvs.ensure(
        VENV,
        "vllm-router",
        [REQUIREMENT],
        wanted=_wanted_hash(),
        what=REQUIREMENT,
        log=log,
        timeout=INSTALL_TIMEOUT,
        error=VLLMRouterUnavailable,
    )


def version() -> str | None:
    """The installed vllm-router version, from the venv's dist-info (None when not installed)."""
    found = sorted(VENV.glob("lib/python*/site-packages/vllm_router-*.dist-info"))
    return found[0].name.removeprefix("vllm_router-").removesuffix(".dist-info") if found else None


def argv(command: Path, port: int, metrics_port: int, upstream_port: int) -> list[str]:
    return [str(command), "--host", "127.0.0.1", "--port", str(port),
            "--worker-urls", f"http://127.0.0.1:{upstream_port}",
            "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port)]  # fmt: skip


def start(workdir: Path, upstream_port: int) -> tuple[procs.Proc, int]:
    """Install if needed, start the router on one worker and wait for ``/readiness``."""
    command = ensure_venv(workdir / "vllm-router-install.log")
    port = procs.free_port()
    args = argv(command, port, procs.free_port(), upstream_port)
    url = f"http://127.0.0.1:{port}/readiness"
    proc = procs.start_ready("vllm-router", args, workdir / "vllm-router.log", url, READY_TIMEOUT,
                             VLLMRouterUnavailable)  # fmt: skip
    return proc, port
