"""The real Dockerfile built with podman on a base made from Debian's packages
(``scripts/build-base-image``), run, and asked for ``/health``; then stopped with SIGTERM.

Skipped unless podman and that base image are on this machine: nothing is pulled from a container
registry (``--pull=never``). The build's ``pip install .`` fetches Nexus's Python dependencies
from the package index, as any build of the Dockerfile does."""

from __future__ import annotations

import resource
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.serving import free_port

pytestmark = pytest.mark.e2e

BASE = "localhost/nexus-base:debian-bookworm-python3.11"


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def runtime_options() -> list[str]:
    """Debian's runc rather than crun, which refuses this kernel's hybrid cgroups."""
    return ["--runtime", "runc"] if shutil.which("runc") else []


def limit_options() -> list[str]:
    """Open-file and process limits below the host's hard limits (podman's defaults are above
    them, and raising a limit needs CAP_SYS_RESOURCE)."""
    options = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        value = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        options += ["--ulimit", f"{name}={value}:{value}"]
    return options


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/build-base-image installs it)")
    if podman("image", "exists", BASE).returncode != 0:
        pytest.skip(f"no base image {BASE} (scripts/build-base-image builds it)")
    tag = f"localhost/nexus-gateway:test-{uuid.uuid4().hex[:8]}"
    built = podman(
        "build", "--pull=never", "--isolation=chroot", "--layers=false",
        "--build-arg", f"BASE={BASE}", "-t", tag, str(REPO), timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield tag
    podman("rmi", tag)  # no build cache is kept (--layers=false): nothing else to remove


@pytest.mark.timeout(1200)
def test_image_serves_health_and_stops_cleanly(image: str) -> None:
    port = free_port()
    name = f"nexus-test-{uuid.uuid4().hex[:8]}"
    started = podman(
        *runtime_options(), "run", "-d", "--name", name, *limit_options(),
        "-p", f"127.0.0.1:{port}:8000", "-e", "NEXUS_DISCOVERY=false", image,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        health = _wait_for_health(f"http://127.0.0.1:{port}/health", name)
        assert health["version"] and "backends" in health
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001", "not root"
        stopped = podman("stop", "-t", "15", name)
        assert stopped.returncode == 0, stopped.stderr
        state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert state == "0", podman("logs", name).stderr[-3000:]
    finally:
        podman("rm", "-f", name)


def _wait_for_health(url: str, name: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    logs = podman("logs", name)
    raise AssertionError(f"no /health in {timeout} s:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
