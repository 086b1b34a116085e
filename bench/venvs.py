"""A rival gateway's own installation: install steps run with their output to a log, and a
Python virtual environment built once and rebuilt when what it pins changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ensure(
    venv: Path,
    command: str,
    pip_args: list[str],
    *,
    wanted: str,
    what: str,
    log: Path,
    timeout: int,
    error: type[RuntimeError],
) -> Path:
    """The path of ``command`` in ``venv``, installing ``pip_args`` into a fresh venv first when
    the marker beside it does not hold ``wanted`` (a hash of the pins). Raises ``error``, whose
    message says why (the log's last lines), when a step fails."""
    path = venv / "bin" / command
    marker = venv / ".bench-requirements.sha256"
    if path.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return path
    print(f"installing {what} into {venv} (once; output in {log}) ...", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "-q", *pip_args],
    ]  # fmt: skip
    run_steps(steps, log, timeout, error)
    if not path.exists():
        raise error(f"installed, but {path} is missing")
    marker.write_text(wanted + "\n")
    return path


def run_steps(
    steps: list[list[str]],
    log: Path,
    timeout: int,
    error: type[RuntimeError],
    cwd: Path | None = None,
) -> None:
    """Run each install step in turn, output appended to ``log``; raise ``error`` naming the step
    (with the log's last lines) when one fails, times out or cannot start."""
    with log.open("ab") as sink:
        for step in steps:
            name = " ".join(step[:4])
            try:
                done = subprocess.run(step, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                      timeout=timeout, check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise error(f"{name} timed out after {timeout} s") from None
            except OSError as exc:
                raise error(f"{name}: {exc}") from None
            if done.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise error(f"{name} failed:\n{tail}")
