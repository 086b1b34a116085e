"""Client dialects (issue 15): ``/v1/messages`` and ``/v1/responses`` next to chat completions.

``python -m bench.dialects [--quick] [--rounds N] [--out PATH] [--keep-logs]``

1. **Native path**: the fake upstream (``bench/upstream.py``, which answers ``/v1/messages`` and
   ``/v1/responses`` with fixed JSON) in its own process, and ``nexus serve --no-discovery`` with
   one ``vllm`` backend on it whose ``apis`` include messages and responses, so that all three
   APIs are relayed byte for byte (checked before measuring: Nexus's answer must be the
   upstream's bytes). For each of chat, messages and responses, in interleaved rounds (the API and
   the target order rotate): latency at concurrency 1 (direct to the upstream against through
   Nexus: p50, p99, added p50/p99) and throughput at concurrency 32 with bench's asyncio client
   (req/s, and Nexus's CPU ms per request from ``/proc``).
2. **Translated path** against calling LiteLLM directly, in this process (as
   ``bench/translated.py``): a chat-only fake upstream (``--chat-only``) in its own process; per
   round, (a) LiteLLM's function called with the arguments Nexus passes
   (``litellm.anthropic_interface.messages.acreate`` or ``litellm.aresponses(...,
   use_chat_completions_api=True)`` on ``lm_studio/<model>``), the whole result read, against
   (b) :func:`nexus.upstream.bridges.open_bridged` for a ``generic`` backend and its reply read.
   Median wall and CPU time per request of each and the difference; target ≤ +0.5 ms (CPU).
   LiteLLM's own calls vary by milliseconds, so the same is then timed with LiteLLM's recorded
   answers replayed (``translated_own_work``): the difference left is Nexus's own work.

Writes ``bench/results/<date>-dialects.json`` (``-dialects-quick`` with ``--quick``) and prints
the tables. Targets: ``docs/performance.md``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from bench import procs, save_report
from bench.http1 import Connection, build_request, percentiles
from bench.load import Loader, run_async
from bench.phases import Accounting, _sequential, added, rotated
from bench.phases_load import _summary
from bench.run import Noise, _cpu_model
from bench.targets import CHAT, NEXUS, Target, chat_body, nexus_config
from bench.upstream import MESSAGES, MODEL, RESPONSES
from nexus.backends.state import BackendView, Status
from nexus.config.kinds import Api, Zone, kind_of
from nexus.upstream import bridges, translated

T = TypeVar("T")
APIS = ("chat", "messages", "responses")
PATHS = {"chat": CHAT, "messages": MESSAGES, "responses": RESPONSES}
#: What the anthropic SDK sends with every request (a native backend receives it).
HEADERS = {"messages": (("anthropic-version", "2023-06-01"),)}
SYSTEM = "You are a helpful assistant. Answer briefly."
USER = "Say hello to the benchmark in one short sentence."
#: The same request as bench's chat body, in each client API.
BODIES: dict[str, dict[str, Any]] = {
    "messages": {"model": MODEL, "max_tokens": 64, "system": SYSTEM,
                 "messages": [{"role": "user", "content": USER}], "temperature": 0.2},
    "responses": {"model": MODEL, "instructions": SYSTEM, "input": USER,
                  "max_output_tokens": 64, "temperature": 0.2},
}  # fmt: skip
ADDED_P50_MS, ADDED_P99_MS, TRANSLATED_MS = 1.0, 3.0, 0.5
TIMEOUT = 30.0


@dataclass(frozen=True)
class Sizes:
    """How much of everything one run does."""

    rounds: int = 5
    per_round: int = 200
    warmup: int = 50
    concurrency: int = 32
    load_seconds: float = 3.0
    load_warmup: float = 1.0
    translated_rounds: int = 300
    translated_warmup: int = 20
    own_rounds: int = 200
    own_batch: int = 20
    streams: bool = True


FULL = Sizes()
QUICK = Sizes(
    rounds=1, per_round=20, warmup=5, load_seconds=0.5, load_warmup=0.0,
    translated_rounds=5, translated_warmup=2, own_rounds=10, own_batch=5,
)  # fmt: skip


def body_bytes(api: str) -> bytes:
    return chat_body() if api == "chat" else json.dumps(BODIES[api]).encode()


@dataclass(frozen=True)
class ApiTarget(Target):
    """A :class:`~bench.targets.Target` sent the bench's request in one client API."""

    path: str = CHAT
    body: bytes = field(default=b"", repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def request(self, body: bytes) -> bytes:
        return build_request("127.0.0.1", self.port, self.path, body, dict(self.headers))

    def json_request(self) -> bytes:
        return self.request(self.body)


def api_targets(upstream_port: int, nexus_port: int, nexus: procs.Proc) -> dict[str, list[Target]]:
    """Per API, the targets ``direct`` (the upstream) and ``nexus``."""
    out: dict[str, list[Target]] = {}
    for api in APIS:
        path, body, headers = PATHS[api], body_bytes(api), HEADERS.get(api, ())
        out[api] = [ApiTarget("direct", upstream_port, None, headers, path, body),
                    ApiTarget("nexus", nexus_port, nexus, headers, path, body)]  # fmt: skip
    return out


# -- processes -------------------------------------------------------------------------------------


def start_upstream(workdir: Path, name: str, chat_only: bool) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    argv += ["--chat-only"] if chat_only else []
    proc = procs.start(name, argv, workdir / f"{name}.log")
    procs.wait_ready(proc, f"http://127.0.0.1:{port}/v1/models", 20.0)
    return proc, port


def start_nexus(workdir: Path, upstream_port: int) -> tuple[procs.Proc, int]:
    """``nexus serve`` as bench.run starts it (health interval 1 h, no discovery), its ``vllm``
    backend speaking every API natively (a valid override; vLLM itself serves all but messages)."""
    port = procs.free_port()
    config = workdir / "nexus.toml"
    apis = '["chat", "embeddings", "completions", "messages", "responses"]'
    config.write_text(nexus_config(upstream_port, port) + f"apis = {apis}\n")
    argv = [NEXUS, "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--no-discovery"]  # fmt: skip
    proc = procs.start("nexus", argv, workdir / "nexus.log")
    procs.wait_ready(proc, f"http://127.0.0.1:{port}/health/ready", 30.0)
    return proc, port


# -- native path -----------------------------------------------------------------------------------


def turn(items: Sequence[T], index: int) -> list[T]:
    shift = index % len(items)
    return [*items[shift:], *items[:shift]]


async def check_native(targets: dict[str, list[Target]]) -> dict[str, bool]:
    """Whether Nexus answers each API with the upstream's very bytes (relayed, not translated)."""
    out = {}
    for api, (direct, nexus) in targets.items():
        answers = []
        for target in (direct, nexus):
            connection = Connection("127.0.0.1", target.port)
            reply = await connection.send(target.json_request())
            await connection.close()
            if reply.status != 200:
                raise RuntimeError(f"{api} via {target.name}: HTTP {reply.status} {reply.body!r}")
            answers.append(reply.body)
        out[api] = answers[0] == answers[1]
    return out


async def latency_c1(
    targets: dict[str, list[Target]], accounts: dict[str, Accounting], sizes: Sizes
) -> dict[str, dict[str, dict[str, Any]]]:
    """Concurrency 1, one keep-alive connection per slice: per API, p50/p99 of each target and
    Nexus's added latency. Each round visits every API (rotating) and both targets (rotating)."""
    samples: dict[str, dict[str, list[float]]] = {
        api: {t.name: [] for t in pair} for api, pair in targets.items()
    }
    errors = {api: dict.fromkeys(names, 0) for api, names in samples.items()}
    for pair in targets.values():
        for target in pair:
            connection = Connection("127.0.0.1", target.port)
            await _sequential(connection, target.json_request(), sizes.warmup, False)
            await connection.close()
    for index in range(sizes.rounds):
        for api in turn(list(targets), index):
            for target in rotated(targets[api], index):
                connection = Connection("127.0.0.1", target.port)
                await _sequential(connection, target.json_request(), 1, False)  # opens it
                accounts[api].begin(target)
                replies, failed = await _sequential(
                    connection, target.json_request(), sizes.per_round, False
                )
                accounts[api].end(target, "json_c1", sizes.per_round)
                await connection.close()
                samples[api][target.name] += [reply.total for reply in replies]
                errors[api][target.name] += failed
    out = {}
    for api, by_target in samples.items():
        stats = {n: {**percentiles(s), "errors": errors[api][n]} for n, s in by_target.items()}
        added(stats)
        out[api] = stats
    return out


def throughput(
    targets: dict[str, list[Target]], accounts: dict[str, Accounting], sizes: Sizes
) -> dict[str, dict[str, dict[str, Any]]]:
    """Closed loop at ``sizes.concurrency`` with the asyncio client, rounds interleaved as in
    :func:`latency_c1`: per API, median req/s of each target, Nexus's over direct."""
    loader = Loader(Path(tempfile.gettempdir()), use_wrk=False, install=False)
    phase = f"json_c{sizes.concurrency}"
    if sizes.load_warmup:
        for pair in targets.values():
            for target in pair:
                loader.run(target, sizes.concurrency, sizes.load_warmup)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        api: {t.name: [] for t in pair} for api, pair in targets.items()
    }
    for index in range(sizes.rounds):
        for api in turn(list(targets), index):
            for target in rotated(targets[api], index):
                accounts[api].begin(target)
                run = loader.run(target, sizes.concurrency, sizes.load_seconds)
                accounts[api].end(target, phase, run["requests"])
                runs[api][target.name].append(run)
    out = {}
    for api, by_target in runs.items():
        stats = {name: _summary(rows) for name, rows in by_target.items()}
        if stats["direct"]["rps"]:
            stats["nexus"]["vs_direct"] = round(stats["nexus"]["rps"] / stats["direct"]["rps"], 4)
        out[api] = stats
    return out


def native(workdir: Path, sizes: Sizes) -> dict[str, Any]:
    upstream, upstream_port = start_upstream(workdir, "upstream", chat_only=False)
    try:
        nexus, nexus_port = start_nexus(workdir, upstream_port)
        try:
            targets = api_targets(upstream_port, nexus_port, nexus)
            accounts = {api: Accounting(procs.Meter(), upstream) for api in APIS}
            relayed = run_async(check_native(targets))
            step("native path: latency at concurrency 1")
            latency = run_async(latency_c1(targets, accounts, sizes))
            step(f"native path: throughput at concurrency {sizes.concurrency} (asyncio client)")
            load = throughput(targets, accounts, sizes)
            memory = procs.memory_mb(nexus.pid)
        finally:
            nexus.stop()
    finally:
        upstream.stop()
    return {
        "relayed_byte_for_byte": relayed,
        "latency_c1": latency,
        f"throughput_c{sizes.concurrency}": load,
        "cpu_ms_per_request": {api: accounts[api].meter.per_request_ms() for api in APIS},
        "nexus_memory": memory,
    }


# -- translated path -------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]
#: (API, stream) of each translated case, in order.
TRANSLATED_CASES = tuple(
    (api, stream) for api in ("messages", "responses") for stream in (False, True)
)


def translated_callers(url: str) -> dict[str, dict[str, Call]]:
    """Per case (``<api>_json`` / ``<api>_stream``), the two ways ``direct`` and ``nexus``, and
    ``record`` (the direct call, its answer kept: a stream as the list of its events)."""
    litellm = translated.warm_up()
    kind = kind_of("generic")
    assert kind is not None
    view = BackendView(name="chat-only", kind=kind, url=url, zone=Zone.RESTRICTED, tier=1,
                       priority=1, max_concurrent=None, status=Status.HEALTHY)  # fmt: skip
    settings = {"model": f"lm_studio/{MODEL}", "api_base": f"{url}/v1", "api_key": "none",
                "max_retries": 0, "num_retries": 0, "timeout": TIMEOUT,
                "drop_params": False}  # fmt: skip
    same = translated.call_settings(bridges.bridge_target(view, MODEL), "none", TIMEOUT)
    assert settings == same, f"Nexus now passes {same}: update the direct call"
    functions: dict[str, tuple[Callable[..., Awaitable[Any]], dict[str, Any], Api]] = {
        "messages": (litellm.anthropic_interface.messages.acreate, {}, Api.MESSAGES),
        "responses": (litellm.aresponses, {"use_chat_completions_api": True}, Api.RESPONSES),
    }
    allowed = {"messages": bridges.MESSAGES_FIELDS, "responses": bridges.RESPONSES_FIELDS}

    def pair(api: str, stream: bool) -> dict[str, Call]:
        function, extra, kind_of_api = functions[api]
        body = {**BODIES[api], "stream": stream} if stream else BODIES[api]
        arguments = {key: value for key, value in body.items() if key in allowed[api]}

        async def direct() -> None:
            response = await function(stream=stream, **extra, **settings, **arguments)
            if stream:
                async for _ in response:
                    pass

        async def record() -> Any:
            response = await function(stream=stream, **extra, **settings, **arguments)
            return [event async for event in response] if stream else response

        async def nexus() -> None:
            reply = await bridges.open_bridged(
                backend=view, api=kind_of_api, body=body, model=MODEL, api_key=None,
                stream=stream, timeout=TIMEOUT,
            )  # fmt: skip
            try:
                if reply.status_code != 200:
                    raise RuntimeError(f"{api}: HTTP {reply.status_code} {await reply.read()!r}")
                async for _ in reply.chunks():
                    pass
            finally:
                await reply.aclose()

        return {"direct": direct, "nexus": nexus, "record": record}

    return {case_name(api, stream): pair(api, stream) for api, stream in TRANSLATED_CASES}


def case_name(api: str, stream: bool) -> str:
    return f"{api}_{'stream' if stream else 'json'}"


async def interleaved(
    cases: dict[str, dict[str, Call]], rounds: int, warmup: int, batch: int, pause: bool
) -> dict[str, dict[str, Any]]:
    """Each round runs every case (rotating), both ways in alternating order, ``batch`` calls a
    sample; per case, both ways' wall and CPU time per call and the difference (nexus - direct).
    ``pause``: wait for the process to be idle before each sample (:func:`settle`)."""
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        case: {"direct": [], "nexus": []} for case in cases
    }
    for index in range(warmup + rounds):
        for case in turn(list(cases), index):
            order = ("direct", "nexus") if index % 2 == 0 else ("nexus", "direct")
            for way in order:
                if pause:
                    await settle()
                call = cases[case][way]
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(batch):
                    await call()
                sample = (time.perf_counter() - wall, time.process_time() - cpu)
                if index >= warmup:
                    samples[case][way].append((sample[0] / batch, sample[1] / batch))
    out = {}
    for case, ways in samples.items():
        stats = {way: summary(values) for way, values in ways.items()}
        delta = {
            key: round(stats["nexus"][key] - stats["direct"][key], 4)
            for key in ("wall_median_ms", "cpu_median_ms", "wall_mean_ms", "cpu_mean_ms")
        }
        for key in ("wall_median", "cpu_median"):
            errors = (stats[way][f"{key}_se_ms"] for way in ("direct", "nexus"))
            delta[f"{key}_se_ms"] = round(math.hypot(*errors), 4)
        out[case] = {**stats, "added": delta}
    return out


async def measure_translated(url: str, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Both ways against the chat-only upstream: the whole LiteLLM call each time."""
    cases = translated_callers(url)
    if not sizes.streams:
        cases = {name: ways for name, ways in cases.items() if name.endswith("_json")}
    try:
        return await interleaved(
            cases, sizes.translated_rounds, sizes.translated_warmup, batch=1, pause=True
        )
    finally:
        await translated.shutdown()


class Replay:
    """A recorded LiteLLM stream, played back."""

    def __init__(self, events: Sequence[Any]) -> None:
        self._events = iter(events)

    def __aiter__(self) -> Replay:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        return None


async def own_work(url: str, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Nexus's own work on the translated path, without LiteLLM's noise: each case's LiteLLM
    answer is recorded once from the chat-only upstream, then LiteLLM's function is replaced by
    one returning that answer (a stream replayed event by event), and both ways are timed again
    in batches: what is left of the difference is :func:`~nexus.upstream.bridges.open_bridged`
    (argument checks, rendering the answer in the client's wire format, reading it)."""
    litellm = translated.warm_up()
    callers = translated_callers(url)
    recorded: dict[tuple[str, bool], Any] = {}
    for api, stream in TRANSLATED_CASES:
        recorded[(api, stream)] = await callers[case_name(api, stream)]["record"]()
    await translated.shutdown()

    def replaying(api: str) -> Callable[..., Awaitable[Any]]:
        async def call(*, stream: bool, **_arguments: Any) -> Any:
            answer = recorded[(api, stream)]
            return Replay(answer) if stream else answer

        return call

    places = {"messages": (litellm.anthropic_interface.messages, "acreate"),
              "responses": (litellm, "aresponses")}  # fmt: skip
    saved = {api: getattr(owner, name) for api, (owner, name) in places.items()}
    for api, (owner, name) in places.items():
        setattr(owner, name, replaying(api))
    try:
        cases = {
            name: {way: call for way, call in ways.items() if way != "record"}
            for name, ways in translated_callers(url).items()
        }
        if not sizes.streams:
            cases = {name: ways for name, ways in cases.items() if name.endswith("_json")}
        return await interleaved(
            cases, sizes.own_rounds, sizes.own_rounds // 10, sizes.own_batch, pause=False
        )
    finally:
        for api, (owner, name) in places.items():
            setattr(owner, name, saved[api])


async def settle(idle_cpu: float = 0.0002, pause: float = 0.002, most: int = 50) -> None:
    """Wait until this process is idle: LiteLLM finishes a call's logging in a task and a thread
    after returning, and that work would otherwise land in whichever call is measured next
    (the same LiteLLM work after either way, so it is left out of both)."""
    for _ in range(most):
        before = time.process_time()
        await asyncio.sleep(pause)
        if time.process_time() - before < idle_cpu:
            return


def summary(values: list[tuple[float, float]]) -> dict[str, Any]:
    """Median and mean (ms) of wall and CPU time, and the median's standard error estimated from
    the spread (IQR / 1.349 as sigma, times 1.2533 / sqrt(n)): LiteLLM's calls vary by several
    milliseconds, so a difference of medians smaller than about twice that says nothing."""
    walls = [wall * 1000 for wall, _ in values]
    cpus = [cpu * 1000 for _, cpu in values]
    out: dict[str, Any] = {"count": len(values)}
    for name, series in (("wall", walls), ("cpu", cpus)):
        out[f"{name}_median_ms"] = round(statistics.median(series), 4)
        out[f"{name}_mean_ms"] = round(statistics.fmean(series), 4)
        out[f"{name}_median_se_ms"] = round(median_error(series), 4)
    return out


def median_error(series: list[float]) -> float:
    if len(series) < 4:
        return 0.0
    first, _median, third = statistics.quantiles(series, n=4)
    return 1.2533 * (third - first) / 1.349 / math.sqrt(len(series))


def translated_path(workdir: Path, sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The translated path with LiteLLM's real calls, and Nexus's own work (:func:`own_work`)."""
    upstream, port = start_upstream(workdir, "upstream-chat-only", chat_only=True)
    url = f"http://127.0.0.1:{port}"
    try:
        calls = run_async(measure_translated(url, sizes))
        step("translated path: Nexus's own work, LiteLLM's answers replayed")
        own = run_async(own_work(url, sizes))
    finally:
        upstream.stop()
    return calls, own


# -- report ----------------------------------------------------------------------------------------


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def row(measure: str, value: float | None, target: str, limit: float, error: float = 0) -> None:
        """``error``: the value's standard error; over the limit by less than twice that is
        ``unclear``, not a miss."""
        status = "n/a" if value is None else "met" if value <= limit else "NOT met"
        if status == "NOT met" and value is not None and value - 2 * error <= limit:
            status = f"unclear (noise +/- {error:.2f})"
        rows.append({"measure": measure, "value": value, "target": target, "status": status})

    for api, stats in report["native"]["latency_c1"].items():
        nexus = stats["nexus"]
        row(f"{api} added p50 (ms)", nexus.get("added_p50_ms"), "<= 1.0", ADDED_P50_MS)
        row(f"{api} added p99 (ms)", nexus.get("added_p99_ms"), "<= 3.0", ADDED_P99_MS)
    for case, stats in report["translated"].items():
        added_cpu = stats["added"]
        row(f"translated {case}: added CPU p50 (ms)", added_cpu["cpu_median_ms"],
            "<= +0.5", TRANSLATED_MS, added_cpu["cpu_median_se_ms"])  # fmt: skip
    for case, stats in report["translated_own_work"].items():
        row(f"translated {case}: own CPU, replayed (ms)", stats["added"]["cpu_median_ms"],
            "<= +0.5", TRANSLATED_MS)  # fmt: skip
    return rows


def print_report(report: dict[str, Any]) -> None:
    native_part = report["native"]
    concurrency = report["meta"]["sizes"]["concurrency"]
    load = native_part[f"throughput_c{concurrency}"]
    print(f"\nNative path (relayed), c1 latency and c{concurrency} throughput (asyncio client)")
    print(f"  {'API':10} {'direct p50/p99':>16} {'Nexus p50/p99':>16} {'added p50/p99':>16} "
          f"{'direct req/s':>12} {'Nexus req/s':>11} {'CPU ms/req c1/c32':>18}")  # fmt: skip
    for api, stats in native_part["latency_c1"].items():
        direct, nexus = stats["direct"], stats["nexus"]
        cpu = native_part["cpu_ms_per_request"][api].get("nexus", {})
        print(
            f"  {api:10} {_pair(direct, 'p50_ms', 'p99_ms'):>16} "
            f"{_pair(nexus, 'p50_ms', 'p99_ms'):>16} "
            f"{_pair(nexus, 'added_p50_ms', 'added_p99_ms'):>16} "
            f"{load[api]['direct']['rps']:>12,.0f} {load[api]['nexus']['rps']:>11,.0f} "
            f"{_pair(cpu, 'json_c1', f'json_c{concurrency}'):>18}"
        )
    print("\nTranslated path (LiteLLM onto chat completions): LiteLLM called directly vs Nexus")
    print_translated(report["translated"], 2)
    print("\nThe same with LiteLLM's recorded answers replayed: Nexus's own work")
    print_translated(report["translated_own_work"], 3)
    print("\nTargets")
    for check in report["checks"]:
        print(f"  {check['measure']:52} {check['value']!s:>8} {check['target']:>8}  "
              f"{check['status']}")  # fmt: skip
    noise = report["meta"]["noise"]
    print(f"\nother processes used {noise['foreign_cores']} cores on average during the run")


def print_translated(cases: dict[str, Any], digits: int) -> None:
    print(f"  {'case':16} {'direct wall/CPU':>16} {'Nexus wall/CPU':>16} {'added wall/CPU':>16}"
          f" {'std. error':>12}  (medians, ms)")  # fmt: skip
    for case, stats in cases.items():
        print(
            f"  {case:16} {_pair(stats['direct'], 'wall_median_ms', 'cpu_median_ms', digits):>16} "
            f"{_pair(stats['nexus'], 'wall_median_ms', 'cpu_median_ms', digits):>16} "
            f"{_pair(stats['added'], 'wall_median_ms', 'cpu_median_ms', digits, True):>16} "
            f"{_pair(stats['added'], 'wall_median_se_ms', 'cpu_median_se_ms', digits):>12}"
        )


def _pair(row: dict[str, Any], first: str, second: str, digits: int = 2, sign: bool = False) -> str:
    def one(key: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"

    return f"{one(first)} / {one(second)}"


T0 = time.perf_counter()


def step(text: str) -> None:
    print(f"[dialects {time.perf_counter() - T0:6.1f}s] {text} ...", file=sys.stderr, flush=True)


def meta(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "nexus_version": metadata.version("nexus-gateway"),
        "litellm_version": metadata.version("litellm"),
        "load_tool": "asyncio",
        "sizes": asdict(sizes),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny counts (~20 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the native path (5)")
    parser.add_argument("--translated-rounds", type=int, help="requests per way and case (300)")
    parser.add_argument("--no-streams", action="store_true", help="translated: JSON only")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<date>-...)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    overrides = {"rounds": args.rounds, "translated_rounds": args.translated_rounds}
    sizes = Sizes(**{**asdict(sizes), **{k: v for k, v in overrides.items() if v is not None}})
    if args.no_streams:
        sizes = Sizes(**{**asdict(sizes), "streams": False})
    procs.raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="nexus-dialects-"))
    report: dict[str, Any] = {"meta": meta(args, sizes)}
    started, noise = time.perf_counter(), Noise()
    try:
        step("native path: starting the fake upstream and Nexus")
        report["native"] = native(workdir, sizes)
        step("translated path: LiteLLM directly against open_bridged")
        report["translated"], report["translated_own_work"] = translated_path(workdir, sizes)
    finally:
        if args.keep_logs:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["noise"] = noise.finish()
    report["checks"] = checks(report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = run(args)
    out = save_report(report, "dialects", quick=args.quick, out=args.out)
    print_report(report)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
