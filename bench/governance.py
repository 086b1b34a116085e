"""Tenants, limits and budgets (issue 16): what a keyed, rate-limited, budgeted request costs
against an unkeyed one.

``python -m bench.governance [--quick] [--rounds N] [--no-wrk] [--out PATH] [--keep-logs]``

One fake upstream (``bench/upstream.py``) and, each as its own ``nexus serve --no-discovery``
process with one ``vllm`` backend on that upstream (health interval 1 h):

- ``plain``: no client keys, no budget (the usage ledger in memory);
- ``keyed-sqlite``: one ``[[clients]]`` tenant whose ``rpm``, ``tpm``, ``daily_usd`` and
  ``monthly_usd`` are set so high that nothing is ever refused, ``[routing.budget]
  monthly_limit_usd`` as high, the usage ledger in SQLite (``[state] usage_path`` in the work
  folder); every request sends ``Authorization: Bearer <the tenant's key>``;
- ``keyed-redis``: the same with ``[state] backend = "redis"`` (rate limits shared through
  Redis, the ledger in Redis) on a ``redis-server`` the bench starts on 127.0.0.1 (from
  ``PATH``, nothing persisted). Without the binary this target is skipped with the reason
  printed, except when ``CI=true``: then the bench fails, as the Redis tests do. Its
  ``acquire_timeout_seconds`` is Nexus's default, 50 ms (``--redis-acquire-timeout``). Each
  Nexus log's warnings, and how long a fallback to local limits lasted, are in the JSON
  (``warnings``);

and ``direct``, the upstream itself. Every target is sent the same bytes (the tenant's key too).
Before measuring, each must answer 200 with the expected headers (keyed: OpenAI's
``x-ratelimit-*``; plain: none of them; keyed without a key: 401). Then interleaved rounds, the
target order rotating: latency at concurrency 1 (one keep-alive connection per slice; p50, p99,
added p50/p99 vs direct) and closed-loop load at concurrency 32 (wrk when on ``PATH``, else the
asyncio client), with each Nexus's CPU per request from ``/proc`` (and Redis's own, apart).
The result is the keyed - plain difference of added p50 (target: within 0.2 ms) and of CPU per
request, as the median of the per-round differences and over all samples pooled.

Writes ``bench/results/<date>-governance.json`` (``-governance-quick`` with ``--quick``) and
prints the table. Figures: ``docs/performance.md``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench import procs, save_report
from bench.http1 import Connection, percentiles
from bench.load import Loader, run_async
from bench.phases import _sequential, added, rotated
from bench.phases_load import _summary
from bench.run import Noise, _cpu_model
from bench.targets import NEXUS, Target, chat_body, nexus_config, start_upstream

KEY_ENV = "BENCH_TENANT_KEY"
KEY = "bench-tenant-key-0123456789abcdef"
TENANT = "bench"
#: Limits no run comes near: nothing is ever refused, yet every check and header is made.
RPM, TPM, USD = 10**9, 10**12, 1e9
HEADERS = (("authorization", f"Bearer {KEY}"),)
PLAIN, SQLITE, REDIS = "plain", "keyed-sqlite", "keyed-redis"
KEYED = (SQLITE, REDIS)
LIMIT_HEADER = "x-ratelimit-limit-requests"
TARGET_MS = 0.2


@dataclass(frozen=True)
class Sizes:
    """How much of everything one run does."""

    rounds: int = 20
    per_round: int = 300
    warmup: int = 100
    concurrency: int = 32
    load_seconds: float = 3.0
    load_warmup: float = 1.0


FULL = Sizes()
QUICK = Sizes(rounds=2, per_round=30, warmup=10, load_seconds=1.0, load_warmup=0.0)


# -- processes -------------------------------------------------------------------------------------


def redis_binary() -> tuple[str | None, str | None]:
    """``(redis-server's path, None)``, or ``(None, why it is skipped)``. Missing with ``CI=true``,
    it is an error (:class:`SystemExit`): in CI a skip would hide that keyed-redis never ran."""
    found = shutil.which("redis-server")
    if found is not None:
        return found, None
    reason = "redis-server is not on PATH (scripts/install-redis installs it)"
    if os.environ.get("CI", "").lower() == "true":
        raise SystemExit(f"governance bench: {reason}; CI=true, so this is a failure, not a skip")
    return None, reason


def redis_command(port: int, *args: str) -> bytes:
    """One command as a bare RESP exchange; the raw reply."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        payload += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(payload)
        return conn.recv(65536)


def start_redis(workdir: Path, binary: str) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]  # fmt: skip
    proc = procs.start("redis", argv, workdir / "redis.log")
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        if not proc.alive():
            raise RuntimeError(f"redis-server exited early:\n{proc.log_tail()}")
        try:
            if redis_command(port, "PING").startswith(b"+PONG"):
                proc.ready_after = time.perf_counter() - proc.started_at
                return proc, port
        except OSError:
            pass
        time.sleep(0.01)
    proc.stop()
    raise TimeoutError(f"redis-server not ready within 10 s:\n{proc.log_tail()}")


def governance_config(
    workdir: Path, name: str, redis_port: int | None, acquire_timeout: float = 0.05
) -> str:
    """The keyed targets' additions: the tenant, the gateway's budget, where the ledger is.
    ``acquire_timeout``: ``[state] acquire_timeout_seconds`` (the rate limits' wait for Redis)."""
    if redis_port is None:
        state = f'[state]\nusage_path = "{workdir / f"{name}-usage.db"}"\n'
    else:
        state = (
            f'[state]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:{redis_port}/0"\n'
            f"acquire_timeout_seconds = {acquire_timeout:g}\n"
        )
    return (
        f"\n{state}\n[routing.budget]\nmonthly_limit_usd = {USD:g}\n\n"
        f'[[clients]]\nname = "{TENANT}"\napi_key_env = "{KEY_ENV}"\n'
        f"rpm = {RPM}\ntpm = {TPM}\ndaily_usd = {USD:g}\nmonthly_usd = {USD:g}\n"
    )


def start_nexus(
    workdir: Path,
    name: str,
    upstream_port: int,
    keyed: bool,
    redis_port: int | None = None,
    acquire_timeout: float = 0.05,
) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    config = workdir / f"{name}.toml"
    text = nexus_config(upstream_port, port)
    if keyed:
        text += governance_config(workdir, name, redis_port, acquire_timeout)
    config.write_text(text)
    argv = [NEXUS, "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--no-discovery"]  # fmt: skip
    proc = procs.start(name, argv, workdir / f"{name}.log", {KEY_ENV: KEY} if keyed else {})
    procs.wait_ready(proc, f"http://127.0.0.1:{port}/health/ready", 30.0)
    return proc, port


# -- checks ----------------------------------------------------------------------------------------


def check_targets(targets: list[Target]) -> dict[str, dict[str, Any]]:
    """Every target answers 200 with what it should carry; raises otherwise."""
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=10) as client:
        for target in targets:
            reply = client.post(target.url, content=chat_body(), headers=dict(target.headers))
            seen = {
                k: v for k, v in reply.headers.items() if k.startswith(("x-ratelimit", "x-nexus"))
            }
            problems = [] if reply.status_code == 200 else [f"HTTP {reply.status_code}"]
            if target.name != "direct" and reply.headers.get("x-nexus-backend") != "fake-vllm":
                problems.append("no x-nexus-backend: fake-vllm")
            if target.name == PLAIN and LIMIT_HEADER in reply.headers:
                problems.append(f"{LIMIT_HEADER} on an unkeyed target")
            if target.name in KEYED:
                for header in (LIMIT_HEADER, "x-ratelimit-limit-tokens"):
                    if header not in reply.headers:
                        problems.append(f"no {header}")
                if reply.headers.get(LIMIT_HEADER) != str(RPM):
                    problems.append(f"{LIMIT_HEADER} is not {RPM}")
                unkeyed = client.post(target.url, content=chat_body()).status_code
                if unkeyed != 401:
                    problems.append(f"without a key: HTTP {unkeyed}, not 401")
            if problems:
                raise RuntimeError(f"{target.name}: {'; '.join(problems)}: {reply.text[:300]}")
            out[target.name] = {"status": reply.status_code, "headers": seen}
    return out


def ledger_check(target: Target, workdir: Path, redis_port: int | None) -> dict[str, Any]:
    """After the phases: the tenant's requests this month as ``GET /v1/usage`` reports them (in
    memory) and as the store holds them (written once a second, so a little behind)."""
    with httpx.Client(timeout=10) as client:
        reply = client.get(f"http://127.0.0.1:{target.port}/v1/usage", headers=dict(HEADERS))
    reply.raise_for_status()
    tenants = {t["name"]: t for t in reply.json()["tenants"]}
    month = datetime.datetime.now(datetime.UTC).strftime("m:%Y-%m")
    if redis_port is None:
        path = workdir / f"{target.name}-usage.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT requests FROM usage WHERE period = ? AND tenant = ?", (month, TENANT)
            ).fetchone()
        stored = int(found[0]) if found else 0
    else:
        raw = redis_command(redis_port, "HGET", f"nexus:usage:{month}:t:{TENANT}", "requests")
        stored = int(raw.split(b"\r\n")[1]) if raw.startswith(b"$") and raw[1:2] != b"-" else 0
    return {
        "store": "redis" if redis_port is not None else "sqlite",
        "month_requests": tenants[TENANT]["month"]["requests"],
        "stored_month_requests": stored,
    }


#: Nexus's log lines when its rate limits leave Redis (limited locally) and come back.
FALLBACK, BACK = "rate limits in Redis unavailable", "rate limits in Redis are available again"


def warnings(proc: procs.Proc) -> dict[str, Any]:
    """The WARNING lines of a Nexus log (count, the first few), and how long its rate limits
    were decided locally because Redis answered too late (``redis_fallback_s``): such requests
    skip Redis, so they would make keyed-redis look cheaper than it is."""
    try:
        lines = proc.log.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    found = [line for line in lines if " WARNING " in line]
    fallback, since = 0.0, None
    for line in lines:
        if FALLBACK in line or BACK in line:
            at = datetime.datetime.fromisoformat(line[:23]).timestamp()
            if FALLBACK in line and since is None:
                since = at
            elif BACK in line and since is not None:
                fallback, since = fallback + at - since, None
    if since is not None and lines:
        fallback += datetime.datetime.fromisoformat(lines[-1][:23]).timestamp() - since
    out: dict[str, Any] = {"count": len(found), "first": [line[24:200] for line in found[:3]]}
    if proc.name == REDIS:
        out["redis_fallback_s"] = round(fallback, 1)
    return out


# -- measurement -----------------------------------------------------------------------------------


@dataclass
class Slices:
    """CPU seconds and requests of every slice, per process and phase: ``gateway`` is the
    target's Nexus (its process tree), ``upstream`` the fake, ``redis`` the server (keyed-redis
    slices only)."""

    upstream: procs.Proc
    redis: procs.Proc | None
    rows: dict[str, dict[str, list[tuple[float, int]]]] = field(default_factory=dict)
    _open: dict[str, float] = field(default_factory=dict)

    def _watched(self, target: Target) -> dict[str, procs.Proc]:
        watched = {"upstream": self.upstream}
        if target.proc is not None:
            watched[target.name] = target.proc
        if target.name == REDIS and self.redis is not None:
            watched["redis"] = self.redis
        return watched

    def begin(self, target: Target) -> None:
        for name, proc in self._watched(target).items():
            self._open[name] = procs.cpu_seconds(proc.pid)

    def end(self, target: Target, phase: str, requests: int) -> None:
        for name, proc in self._watched(target).items():
            used = procs.cpu_seconds(proc.pid) - self._open.pop(name)
            self.rows.setdefault(name, {}).setdefault(phase, []).append((used, requests))

    def per_request_ms(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                phase: round(1000 * sum(c for c, _ in rows) / max(1, sum(n for _, n in rows)), 3)
                for phase, rows in phases.items()
            }
            for name, phases in self.rows.items()
        }

    def rounds_ms(self, name: str, phase: str) -> list[float]:
        """CPU ms per request of each of ``name``'s slices of ``phase``, in order."""
        return [1000 * c / max(1, n) for c, n in self.rows.get(name, {}).get(phase, [])]


async def latency_round(
    targets: list[Target], slices: Slices, index: int, per_round: int
) -> dict[str, tuple[list[float], int]]:
    """One slice per target (rotating order): a fresh keep-alive connection opened by one untimed
    request, then ``per_round`` requests one at a time; per target, the times (s) and errors."""
    out = {}
    for target in rotated(targets, index):
        connection = Connection("127.0.0.1", target.port)
        await _sequential(connection, target.json_request(), 1, False)
        slices.begin(target)
        replies, failed = await _sequential(connection, target.json_request(), per_round, False)
        slices.end(target, "json_c1", per_round)
        await connection.close()
        out[target.name] = ([reply.total for reply in replies], failed)
    return out


async def warm_up(targets: list[Target], count: int) -> None:
    for target in targets:
        connection = Connection("127.0.0.1", target.port)
        await _sequential(connection, target.json_request(), count, False)
        await connection.close()


def measure(
    targets: list[Target], slices: Slices, loader: Loader, sizes: Sizes
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[float]]]:
    """Interleaved rounds: in each, every target's c1 slice, then every target's load slice (the
    order rotating each round). Returns c1 stats, load stats, and each target's p50 per round."""
    names = [t.name for t in targets]
    samples: dict[str, list[float]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)
    round_p50: dict[str, list[float]] = {n: [] for n in names}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    phase = f"json_c{sizes.concurrency}"
    run_async(warm_up(targets, sizes.warmup))
    if sizes.load_warmup:
        for target in targets:
            loader.run(target, sizes.concurrency, sizes.load_warmup)
    for index in range(sizes.rounds):
        step(f"round {index + 1}/{sizes.rounds}")
        for name, (times, failed) in run_async(
            latency_round(targets, slices, index, sizes.per_round)
        ).items():
            samples[name] += times
            errors[name] += failed
            round_p50[name].append(statistics.median(times) * 1000 if times else math.nan)
        for target in rotated(targets, index):
            slices.begin(target)
            run = loader.run(target, sizes.concurrency, sizes.load_seconds)
            slices.end(target, phase, run["requests"])
            runs[target.name].append(run)
    latency: dict[str, Any] = {
        name: {**percentiles(s), "errors": errors[name]} for name, s in samples.items()
    }
    added(latency)
    for name, p50s in round_p50.items():
        latency[name]["rounds_p50_ms"] = [round(p, 4) for p in p50s]
    load = {name: _summary(rows) for name, rows in runs.items()}
    direct = load["direct"]["rps"]
    for name, row in load.items():
        if name != "direct" and direct:
            row["vs_direct"] = round(row["rps"] / direct, 4)
    return latency, load, round_p50


def spread(values: list[float]) -> dict[str, Any]:
    """Median of per-round values, their range and the median's standard error (IQR / 1.349
    as sigma, times 1.2533 / sqrt(n))."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {}
    se = 0.0
    if len(clean) >= 4:
        first, _median, third = statistics.quantiles(clean, n=4)
        se = 1.2533 * (third - first) / 1.349 / math.sqrt(len(clean))
    return {
        "median": round(statistics.median(clean), 4),
        "min": round(min(clean), 4),
        "max": round(max(clean), 4),
        "se": round(se, 4),
        "rounds": len(clean),
    }


def differences(
    latency: dict[str, Any],
    load: dict[str, Any],
    round_p50: dict[str, list[float]],
    slices: Slices,
    phase: str,
) -> dict[str, dict[str, Any]]:
    """Each keyed target minus plain: added p50 (pooled, and per round), added p99, CPU ms per
    request at c1 and at load (pooled, and per round), and the load rate ratio."""
    cpu = slices.per_request_ms()
    out = {}
    for name in KEYED:
        if name not in latency:
            continue
        per_round = [k - p for k, p in zip(round_p50[name], round_p50[PLAIN], strict=True)]
        row: dict[str, Any] = {
            "added_p50_ms": round(latency[name]["p50_ms"] - latency[PLAIN]["p50_ms"], 4),
            "added_p50_rounds_ms": spread(per_round),
            "added_p99_ms": round(latency[name]["p99_ms"] - latency[PLAIN]["p99_ms"], 4),
        }
        for key, which in (
            ("cpu_ms_c1", "json_c1"),
            (f"cpu_ms_{phase.removeprefix('json_')}", phase),
        ):
            row[key] = round(cpu[name][which] - cpu[PLAIN][which], 4)
            pairs = zip(slices.rounds_ms(name, which), slices.rounds_ms(PLAIN, which), strict=True)
            row[f"{key}_rounds"] = spread([k - p for k, p in pairs])
        if load[PLAIN]["rps"]:
            row["rps_ratio"] = round(load[name]["rps"] / load[PLAIN]["rps"], 4)
        out[name] = row
    return out


def checks(diffs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The 0.2 ms target on the per-round median (``unclear`` when over by less than twice its
    standard error)."""
    rows = []
    for name, row in diffs.items():
        rounds = row["added_p50_rounds_ms"]
        value, se = rounds.get("median"), rounds.get("se", 0.0)
        if value is None:
            status = "n/a"
        elif value <= TARGET_MS:
            status = "met"
        elif value - 2 * se <= TARGET_MS:
            status = f"unclear (noise +/- {se:.3f})"
        else:
            status = "NOT met"
        measure = f"{name} - plain: added p50, median of rounds (ms)"
        rows.append({"measure": measure, "value": value, "target": f"<= {TARGET_MS}",
                     "status": status})  # fmt: skip
    return rows


# -- run -------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = Sizes(**{**asdict(sizes), "rounds": args.rounds})
    binary, skipped = redis_binary()
    procs.raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="nexus-governance-"))
    loader = Loader(workdir, use_wrk=not args.no_wrk, install=False)
    report: dict[str, Any] = {"meta": meta(args, sizes, loader.tool, binary)}
    if skipped:
        report["skipped"] = {REDIS: skipped}
        print(f"keyed-redis skipped: {skipped}", file=sys.stderr)
    started, noise = time.perf_counter(), Noise()
    started_procs: list[procs.Proc] = []
    try:
        servers = "redis-server and three" if binary is not None else "two"
        step(f"starting the fake upstream, {servers} Nexus processes")
        upstream, upstream_port = start_upstream(workdir, 20, 50.0)
        started_procs.append(upstream)
        redis, redis_port = None, None
        if binary is not None:
            redis, redis_port = start_redis(workdir, binary)
            started_procs.append(redis)
        targets = [Target("direct", upstream_port, None, HEADERS)]
        plan = [(PLAIN, False, None), (SQLITE, True, None)]
        plan += [(REDIS, True, redis_port)] if redis_port is not None else []
        for name, keyed, port in plan:
            proc, nexus_port = start_nexus(
                workdir, name, upstream_port, keyed, port, args.redis_acquire_timeout
            )
            started_procs.append(proc)
            targets.append(Target(name, nexus_port, proc, HEADERS))
        report["checked"] = check_targets(targets)
        slices = Slices(upstream, redis)
        latency, load, round_p50 = measure(targets, slices, loader, sizes)
        phase = f"json_c{sizes.concurrency}"
        report["latency_c1"] = latency
        report[f"throughput_c{sizes.concurrency}"] = load
        report["cpu_ms_per_request"] = slices.per_request_ms()
        report["keyed_minus_plain"] = differences(latency, load, round_p50, slices, phase)
        report["ledger"] = {
            t.name: ledger_check(t, workdir, redis_port if t.name == REDIS else None)
            for t in targets
            if t.name in KEYED
        }
        report["memory"] = {t.name: procs.memory_mb(t.proc.pid) for t in targets if t.proc}
        report["warnings"] = {t.name: warnings(t.proc) for t in targets if t.proc}
    finally:
        for proc in reversed(started_procs):
            proc.stop()
        if args.keep_logs:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["noise"] = noise.finish()
    report["checks"] = checks(report["keyed_minus_plain"])
    return report


# -- report ----------------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    concurrency = report["meta"]["sizes"]["concurrency"]
    phase = f"json_c{concurrency}"
    load, cpu = report[f"throughput_c{concurrency}"], report["cpu_ms_per_request"]
    print(f"\nc1 latency and c{concurrency} load ({report['meta']['load_tool']}), "
          f"{report['meta']['sizes']['rounds']} interleaved rounds")  # fmt: skip
    rate, cpu_title = f"c{concurrency} req/s (rounds)", f"CPU ms/req c1 / c{concurrency}"
    print(f"  {'target':13} {'p50 / p99 ms':>16} {'added p50 / p99':>16} "
          f"{rate:>26} {cpu_title:>20}")  # fmt: skip
    for name, stats in report["latency_c1"].items():
        row = load[name]
        rounds = f"{row['rps']:,.0f} ({min(row['rounds_rps']):,.0f}-{max(row['rounds_rps']):,.0f})"
        print(
            f"  {name:13} {_pair(stats, 'p50_ms', 'p99_ms', 3):>16} "
            f"{_pair(stats, 'added_p50_ms', 'added_p99_ms', 3):>16} {rounds:>26} "
            f"{_pair(cpu.get(name, {}), 'json_c1', phase, 3):>20}"
        )
    if "redis" in cpu:
        print(f"  redis-server's own CPU during keyed-redis slices: "
              f"{_pair(cpu['redis'], 'json_c1', phase, 3)} ms/req")  # fmt: skip
    for name, skipped in report.get("skipped", {}).items():
        print(f"  {name:13} skipped: {skipped}")
    for name, found in report["warnings"].items():
        if found.get("count"):
            print(f"  {name}: {found['count']} warning(s) in its log, e.g. {found['first'][0]}")
        if found.get("redis_fallback_s"):
            print(f"  {name}: rate limits decided locally (Redis too slow) for "
                  f"{found['redis_fallback_s']} s of the run")  # fmt: skip
    print("\nkeyed - plain (median of rounds [range], pooled)")
    for name, row in report["keyed_minus_plain"].items():
        rounds = row["added_p50_rounds_ms"]
        c1, c32 = row["cpu_ms_c1_rounds"], row[f"cpu_ms_c{concurrency}_rounds"]
        print(
            f"  {name:13} added p50 {rounds['median']:+.3f} ms [{rounds['min']:+.3f}, "
            f"{rounds['max']:+.3f}] (pooled {row['added_p50_ms']:+.3f}, p99 "
            f"{row['added_p99_ms']:+.3f}); CPU/req c1 {c1['median']:+.3f} ms "
            f"(pooled {row['cpu_ms_c1']:+.3f}), c{concurrency} {c32['median']:+.3f} ms "
            f"(pooled {row[f'cpu_ms_c{concurrency}']:+.3f}); req/s x{row.get('rps_ratio', 0):.3f}"
        )
    print("\nTargets")
    for check in report["checks"]:
        print(f"  {check['measure']:52} {check['value']!s:>8} {check['target']:>8}  "
              f"{check['status']}")  # fmt: skip
    noise = report["meta"]["noise"]
    print(f"\nother processes used {noise['foreign_cores']} cores on average during the run")


def _pair(row: dict[str, Any], first: str, second: str, digits: int = 2) -> str:
    def one(key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    return f"{one(first)} / {one(second)}"


T0 = time.perf_counter()


def step(text: str) -> None:
    print(f"[governance {time.perf_counter() - T0:6.1f}s] {text} ...", file=sys.stderr, flush=True)


def meta(args: argparse.Namespace, sizes: Sizes, tool: str, redis: str | None) -> dict[str, Any]:
    version = None
    if redis is not None:
        done = subprocess.run([redis, "--version"], capture_output=True, text=True, check=False)
        version = done.stdout.split(" v=", 1)[-1].split()[0] if " v=" in done.stdout else None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "nexus_version": metadata.version("nexus-gateway"),
        "redis_version": version,
        "redis_acquire_timeout_s": args.redis_acquire_timeout,
        "load_tool": tool,
        "sizes": asdict(sizes),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny counts (~30 s)")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds ({FULL.rounds})")
    parser.add_argument("--no-wrk", action="store_true", help="load with the asyncio client")
    parser.add_argument(
        "--redis-acquire-timeout",
        type=float,
        default=0.05,
        help="keyed-redis: [state] acquire_timeout_seconds (Nexus's default, 0.05)",
    )
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<date>-...)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = run(args)
    out = save_report(report, "governance", quick=args.quick, out=args.out)
    print_report(report)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
