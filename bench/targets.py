"""The fake upstream and Nexus as processes, and the targets a measurement is sent to."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from bench.http1 import build_request
from bench.upstream import MODEL, SLOW_MODEL

NEXUS = str(Path(sys.executable).with_name("nexus"))
CHAT = "/v1/chat/completions"
#: The target ``nexus serve`` with ``[server] workers = "auto"`` (one worker process per core).
NEXUS_AUTO = "nexus-auto"
DUMMY_KEY_ENV = "BENCH_DUMMY_ANTHROPIC_KEY"
MESSAGES = (
    b'[{"role":"system","content":"You are a helpful assistant. Answer briefly."},'
    b'{"role":"user","content":"Say hello to the benchmark in one short sentence."}]'
)


def chat_body(model: str = MODEL, stream: bool = False) -> bytes:
    """The same small chat request for every target."""
    tail = b',"stream":true}' if stream else b"}"
    return (
        b'{"model":"' + model.encode() + b'","messages":' + MESSAGES
        + b',"max_tokens":64,"temperature":0.2' + tail
    )  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where requests go: direct to the upstream, or through a gateway process."""

    name: str
    port: int
    proc: procs.Proc | None  # None for "direct": no gateway to account for
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CHAT}"

    def request(self, body: bytes) -> bytes:
        return build_request("127.0.0.1", self.port, CHAT, body, dict(self.headers))

    def json_request(self) -> bytes:
        return self.request(chat_body())

    def stream_request(self, slow: bool = False) -> bytes:
        return self.request(chat_body(SLOW_MODEL if slow else MODEL, stream=True))


def start_upstream(
    workdir: Path, chunks: int, slow_delay_ms: float, impl: str = "asgi"
) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--impl", impl,
            "--chunks", str(chunks), "--slow-delay-ms", str(slow_delay_ms)]  # fmt: skip
    proc = procs.start("upstream", argv, workdir / "upstream.log")
    procs.wait_ready(proc, f"http://127.0.0.1:{port}/v1/models", 20.0)
    return proc, port


def nexus_config(
    upstream_port: int, port: int, translated: bool = False, workers: str | None = None
) -> str:
    """One vllm backend on the fake upstream; ``translated`` adds an (unreachable) Anthropic one,
    ``workers`` sets ``[server] workers`` (e.g. ``'"auto"'``, TOML as written)."""
    server = "" if workers is None else f"workers = {workers}\n"
    text = (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n{server}\n'
        "[discovery]\nenabled = false\n\n"
        "[health_check]\ninterval_seconds = 3600\ntimeout_seconds = 5\n"
        "failure_threshold = 3\nrecovery_threshold = 1\n\n"
        f'[[backends]]\nname = "fake-vllm"\nurl = "http://127.0.0.1:{upstream_port}"\n'
        'type = "vllm"\npriority = 10\n'
    )
    if translated:
        text += (
            f'\n[[backends]]\nname = "anthropic-dummy"\nurl = "http://127.0.0.1:{procs.free_port()}"\n'
            f'type = "anthropic"\napi_key_env = "{DUMMY_KEY_ENV}"\npriority = 80\n'
            'models = ["claude-3-5-haiku-20241022"]\n'
        )
    return text


def start_nexus(
    workdir: Path,
    upstream_port: int,
    name: str = "nexus",
    translated: bool = False,
    source: Path | None = None,
    workers: str | None = None,
) -> tuple[procs.Proc, int]:
    """Start ``nexus serve`` and wait for its first ``/health`` 200 (recorded as ``ready_after``);
    ``notes["routable_after"]`` is when ``/health/ready`` said the backend was healthy. With
    ``source`` (another checkout), the package is imported from there (``PYTHONPATH``);
    ``workers`` is ``[server] workers`` (see :func:`nexus_config`)."""
    port = procs.free_port()
    config = workdir / f"{name}.toml"
    config.write_text(nexus_config(upstream_port, port, translated, workers))
    argv = [NEXUS, "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--no-discovery"]  # fmt: skip
    env = {DUMMY_KEY_ENV: "dummy-key"} if translated else {}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    proc = procs.start(name, argv, workdir / f"{name}.log", env)
    base = f"http://127.0.0.1:{port}"
    procs.wait_ready(proc, f"{base}/health", 30.0)
    health_after = proc.ready_after
    procs.wait_ready(proc, f"{base}/health/ready", 30.0)
    proc.notes["routable_after"] = f"{proc.ready_after:.3f}"
    proc.ready_after = health_after
    return proc, port


def start_nexus_auto(
    workdir: Path, upstream_port: int, timeout: float = 30.0
) -> tuple[procs.Proc, int, dict[str, Any]]:
    """``nexus serve`` with ``[server] workers = "auto"``, ready once every worker answers.

    Its first ``/health`` 200 (``ready_after``) may come from one worker while another is still
    importing, so this then asks ``GET /v1/stats`` on fresh connections until each worker child
    of the parent has answered (its ``process.pid``). The dict: ``workers`` (the parent's worker
    children then, 1 when it serves in-process), ``processes`` (the whole tree: the parent, the
    workers and multiprocessing's resource tracker), ``all_workers_after_s`` and
    ``cpu_affinity`` (the cores it may run on, which ``"auto"`` counts)."""
    proc, port = start_nexus(workdir, upstream_port, NEXUS_AUTO, workers='"auto"')
    answered: set[int] = set()
    deadline = time.perf_counter() + timeout
    workers: list[int] = []
    with httpx.Client(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while True:
            workers = procs.worker_children(proc.pid)
            if set(workers) <= answered and (workers or answered):
                break
            if time.perf_counter() > deadline or not proc.alive():
                proc.stop()
                raise TimeoutError(
                    f"{NEXUS_AUTO}: workers {sorted(set(workers) - answered)} did not answer "
                    f"within {timeout} s:\n{proc.log_tail()}"
                )
            try:
                reply = client.get(f"http://127.0.0.1:{port}/v1/stats").json()
                answered.add(int(reply["process"]["pid"]))
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                time.sleep(0.05)
    return (
        proc,
        port,
        {
            "config": '[server] workers = "auto"',
            "workers": max(1, len(workers)),
            "worker_pids": workers,
            "processes": len(procs.descendants(proc.pid)),
            "all_workers_after_s": round(time.perf_counter() - proc.started_at, 3),
            "cpu_affinity": len(os.sched_getaffinity(0)),
        },
    )
