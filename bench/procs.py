"""Processes under test: start, wait until they answer, read their CPU and memory, stop.

CPU and memory come from ``/proc``, summed over the process tree (the process and every
descendant, found through ``/proc/<pid>/task/<tid>/children``, so a server that starts worker
processes, such as ``nexus serve`` with ``[server] workers = "auto"``, is counted whole):
``utime + stime`` of each, plus ``cutime + cstime`` (its children that have exited and been
waited for: a replaced worker's CPU does not vanish from the sum), ``VmRSS`` (resident now) and
``VmHWM`` (each process's own peak resident; their sum is an upper bound of the tree's peak, as
the processes need not peak at the same moment).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (hundreds of streams need the descriptors)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


@dataclass
class Proc:
    """A started server process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float
    ready_after: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the whole process group."""
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass


def start(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start ``argv`` in its own process group, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log, time.perf_counter())


def wait_ready(
    proc: Proc, url: str, timeout: float, headers: dict[str, str] | None = None
) -> float:
    """Poll ``url`` every 10 ms until it answers 200; seconds since the process started."""
    deadline = proc.started_at + timeout
    with httpx.Client(timeout=1.0, headers=headers) as client:
        while time.perf_counter() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
            try:
                if client.get(url).status_code == 200:
                    proc.ready_after = time.perf_counter() - proc.started_at
                    return proc.ready_after
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    proc.stop()
    raise TimeoutError(f"{proc.name} not ready at {url} within {timeout} s:\n{proc.log_tail()}")


def start_ready(
    name: str,
    argv: Sequence[str],
    log: Path,
    url: str,
    timeout: float,
    error: type[RuntimeError],
    env: dict[str, str] | None = None,
) -> Proc:
    """:func:`start` then :func:`wait_ready`; a process that exits or is not ready in time
    raises ``error`` (a rival gateway's "unavailable", whose message says why)."""
    proc = start(name, argv, log, env)
    try:
        wait_ready(proc, url, timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise error(str(exc)) from None
    return proc


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children(current))
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (those started by any of its threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def worker_children(pid: int) -> list[int]:
    """The children of ``pid`` that are ``multiprocessing`` workers (started with ``spawn``), not
    its resource tracker: the worker processes of ``nexus serve`` with several workers."""
    workers = []
    for child in children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"spawn_main" in arg for arg in argv):
            workers.append(child)
    return sorted(workers)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` and its descendants so far, with those of the
    descendants that have exited and been waited for (``cutime``, ``cstime``)."""
    total = 0
    for each in descendants(pid):
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime (fields 14 to 17 of proc(5))
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """``rss_mb`` (VmRSS) and ``peak_rss_mb`` (VmHWM), each summed over the process tree."""
    rss = peak = 0
    for each in descendants(pid):
        try:
            lines = Path(f"/proc/{each}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return {"rss_mb": round(rss / 1024, 1), "peak_rss_mb": round(peak / 1024, 1)}


class Meter:
    """CPU seconds and request counts per (process name, phase), summed over slices."""

    def __init__(self) -> None:
        self.cpu: dict[str, dict[str, float]] = {}
        self.requests: dict[str, dict[str, int]] = {}

    def add(self, name: str, phase: str, seconds: float, requests: int) -> None:
        self.cpu.setdefault(name, {})
        self.requests.setdefault(name, {})
        self.cpu[name][phase] = self.cpu[name].get(phase, 0.0) + seconds
        self.requests[name][phase] = self.requests[name].get(phase, 0) + requests

    def per_request_ms(self) -> dict[str, dict[str, float]]:
        """Milliseconds of CPU per request, per process and phase."""
        return {
            name: {
                phase: round(1000 * seconds / max(1, self.requests[name][phase]), 3)
                for phase, seconds in phases.items()
            }
            for name, phases in self.cpu.items()
        }


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def own_seconds() -> float:
    """CPU seconds of this process and of its waited-for children (servers, wrk)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
