"""The LiteLLM proxy for comparison, in its own virtual environment ``bench/.venv-litellm``.

``pip install 'litellm[proxy]==1.110.2'`` does not resolve from the registry here (three pinned
extras are not published), so the venv gets ``bench/litellm-proxy-requirements.txt`` instead:
litellm 1.110.2 plus every other requirement of its ``proxy`` extra. The venv is built once and
rebuilt when that file changes (a hash is kept beside it).

The proxy runs as one process (``--num_workers 1``), offline (``LITELLM_OFFLINE_MODE``, local
cost map), without a database, with a master key, and a config whose deployments point at the
same fake upstream as Nexus.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bench import procs, venvs
from bench.upstream import MODEL, SLOW_MODEL

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-litellm"
REQUIREMENTS = HERE / "litellm-proxy-requirements.txt"
MASTER_KEY = "sk-bench-master-key"
INSTALL_TIMEOUT = 1200
READY_TIMEOUT = 60.0


class LiteLLMUnavailable(RuntimeError):
    """The proxy could not be installed or started; the message says why."""


def _wanted_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv(log: Path) -> Path:
    """Create or refresh the venv; the path of its ``litellm`` command."""
    return venvs.ensure(
        VENV,
        "litellm",
        ["-r", str(REQUIREMENTS)],
        wanted=_wanted_hash(),
        what="the LiteLLM proxy",
        log=log,
        timeout=INSTALL_TIMEOUT,
        error=LiteLLMUnavailable,
    )


def version() -> str | None:
    """The installed litellm version, from the venv's dist-info (None when not installed)."""
    found = sorted(VENV.glob("lib/python*/site-packages/litellm-*.dist-info"))
    return found[0].name.removeprefix("litellm-").removesuffix(".dist-info") if found else None


def config_yaml(upstream_port: int) -> str:
    """One deployment per bench model, both on the fake upstream."""
    entries = []
    for name in (MODEL, SLOW_MODEL):
        entries.append(
            f"  - model_name: {name}\n"
            f"    litellm_params:\n"
            f"      model: openai/{name}\n"
            f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
            f"      api_key: x\n"
        )
    return "model_list:\n" + "".join(entries) + f"general_settings:\n  master_key: {MASTER_KEY}\n"


def environment() -> dict[str, str]:
    return {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def start(workdir: Path, upstream_port: int) -> tuple[procs.Proc, int]:
    """Install if needed, start the proxy and wait for ``/health/liveliness``."""
    command = ensure_venv(workdir / "litellm-install.log")
    config = workdir / "litellm.yaml"
    config.write_text(config_yaml(upstream_port))
    port = procs.free_port()
    argv = [str(command), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/health/liveliness"
    proc = procs.start_ready("litellm", argv, workdir / "litellm.log", url, READY_TIMEOUT,
                             LiteLLMUnavailable, environment())  # fmt: skip
    return proc, port
