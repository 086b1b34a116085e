"""Nexus against a direct call and against vllm-router, Portkey and the LiteLLM proxy, in one
interleaved run.

``python -m bench.run [--quick] [--skip-nexus-auto] [--skip-vllm-router] [--skip-portkey]
[--skip-litellm] [--no-100k] [--out bench/results/<date>.json]``

Starts the fake upstream, Nexus (one vllm backend on it), the same Nexus with ``[server] workers =
"auto"`` (``nexus-auto``: one worker process per core) and the rival gateways (``bench.rivals``:
vllm-router in its own venv, Portkey from npm, the LiteLLM proxy in its own venv, each on the same
upstream), checks whether each returns the upstream's bytes unchanged, then measures them in
alternating rounds: JSON latency at concurrency 1, throughput at 8 and 32 (wrk), streaming TTFB and
total time at 1 and 16, concurrent slow streams held, CPU per request and memory of each gateway;
then Nexus start-up time, Nexus memory after 1,000 and 100,000 requests, and the planner
micro-benchmark. Prints the tables and writes the JSON. ``--quick`` is the ~20 s smoke version (no
rival, no ``nexus-auto``, tiny counts).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import RESULTS, litellm_proxy, phases, phases_load, planner, procs, rivals
from bench.load import Loader, run_async
from bench.report import NEXUS_AUTO_LABEL, checks, print_report
from bench.targets import NEXUS_AUTO, Target, start_nexus, start_nexus_auto, start_upstream

#: Seconds a full run may take: 10 minutes was the limit with LiteLLM as the only rival, 15 with
#: vllm-router and Portkey too (installs on a first run included); the memory-growth phase, last,
#: gets what is left, so on a slow or busy machine it serves fewer than 100,000 requests.
RUN_BUDGET = 870.0
PLANNER_RESERVE = 15.0
HEADERS = (("authorization", f"Bearer {litellm_proxy.MASTER_KEY}"),)
#: The target name of ``--baseline``: the same gateway from another checkout.
BASELINE = "nexus-baseline"


@dataclass(frozen=True)
class Sizes:
    """How much of everything one run does."""

    latency_rounds: int = 10
    latency_per_round: int = 200
    warmup: int = 100
    load_rounds: int = 3
    load_seconds: float = 3.0
    load_warmup: bool = True
    stream_c1_rounds: int = 10
    stream_c1_per_round: int = 50
    stream_c16_rounds: int = 3
    stream_c16_per_worker: int = 10
    ramp_levels: tuple[int, ...] = (100, 250, 500)
    ramp_timeout: float = 60.0
    startup_runs: int = 3
    growth_first: int = 1_000
    growth_total: int = 100_000
    planner_decisions: int = 20_000
    chunks: int = 20
    slow_delay_ms: float = 50.0


FULL = Sizes()
QUICK = Sizes(
    latency_rounds=2, latency_per_round=50, warmup=10,
    load_rounds=1, load_seconds=1.0, load_warmup=False,
    stream_c1_rounds=2, stream_c1_per_round=10, stream_c16_rounds=1, stream_c16_per_worker=2,
    ramp_levels=(20,), ramp_timeout=20.0, startup_runs=1, growth_first=200, growth_total=2_000,
    planner_decisions=1_000, slow_delay_ms=20.0,
)  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="~20 s smoke run, no rival gateway")
    parser.add_argument(
        "--skip-nexus-auto", action="store_true", help='do not start Nexus with workers = "auto"'
    )
    rivals.add_flags(parser)
    parser.add_argument("--no-100k", action="store_true", help="memory growth to 10k, not 100k")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load client")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<date>.json)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of Nexus (e.g. a git worktree of an older commit), measured as "
        "the target nexus-baseline in the same interleaved rounds",
    )
    return parser.parse_args(argv)


def meta(args: argparse.Namespace, sizes: Sizes, loader: Loader, fd_limit: int) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "nexus_version": metadata.version("nexus-gateway"),
        "litellm_proxy_version": litellm_proxy.version(),
        "load_tool": loader.tool,
        "fd_limit": fd_limit,
        "sizes": asdict(sizes),
        "targets": ["direct", "nexus"],
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")


def start_gateways(
    args: argparse.Namespace, report: dict[str, Any], workdir: Path, stack: ExitStack, port: int
) -> list[Target]:
    """Nexus (and ``--baseline``), then every rival not skipped; each one's start-up time and
    resident memory as soon as it first answers."""
    memory: dict[str, dict[str, float]] = {}
    report["memory"] = memory

    def ready(target: Target) -> None:
        if target.proc:
            rss = procs.memory_mb(target.proc.pid)["rss_mb"]
            after = round(target.proc.ready_after or 0.0, 3)
            memory[target.name] = {"ready_after_s": after, "ready_rss_mb": rss}

    nexus, nexus_port = start_nexus(workdir, port)
    stack.callback(nexus.stop)
    targets = [Target("direct", port, None, HEADERS), Target("nexus", nexus_port, nexus, HEADERS)]
    ready(targets[1])
    auto = start_auto(args, report, workdir, stack, port)
    if auto is not None:
        targets.append(auto)
        ready(auto)
    if args.baseline is not None:
        base, base_port = start_nexus(workdir, port, BASELINE, source=args.baseline.resolve())
        stack.callback(base.stop)
        targets.append(Target(BASELINE, base_port, base, HEADERS))
        ready(targets[-1])
    targets += rivals.start_rivals(args, report, workdir, stack, port, HEADERS, ready)
    report["meta"]["targets"] = [t.name for t in targets]
    report["meta"]["litellm_proxy_version"] = litellm_proxy.version()  # installed by now
    report["meta"]["rival_versions"] = rivals.versions()
    return targets


def start_auto(
    args: argparse.Namespace, report: dict[str, Any], workdir: Path, stack: ExitStack, port: int
) -> Target | None:
    """``nexus-auto`` unless skipped; ``report["nexus_auto"]`` says how many workers it runs, or
    why it is not measured. Its RSS at ready is read once every worker has answered."""
    entry: dict[str, Any] = {"label": NEXUS_AUTO_LABEL, "measured": False}
    report["nexus_auto"] = entry
    flag = "--quick" if args.quick else "--skip-nexus-auto" if args.skip_nexus_auto else None
    if flag is not None:
        entry["why_not"] = f"skipped ({flag})"
        return None
    try:
        proc, auto_port, info = start_nexus_auto(workdir, port)
    except (RuntimeError, TimeoutError, OSError) as exc:
        entry["why_not"] = str(exc).splitlines()[0]
        print(f"{NEXUS_AUTO} unavailable: {exc}", file=sys.stderr)
        return None
    stack.callback(proc.stop)
    entry.update(measured=True, **info)
    return Target(NEXUS_AUTO, auto_port, proc, HEADERS)


def measure(
    targets: list[Target], account: phases.Accounting, loader: Loader, sizes: Sizes
) -> dict[str, Any]:
    """The interleaved phases against every target."""
    out: dict[str, Any] = {}
    step("JSON latency at concurrency 1")
    out["latency_c1"] = run_async(phases.latency_c1(
        targets, account, sizes.latency_rounds, sizes.latency_per_round, sizes.warmup))  # fmt: skip
    out["throughput"] = {}
    for concurrency in (8, 32):
        step(f"throughput at concurrency {concurrency} ({loader.tool})")
        out["throughput"][f"c{concurrency}"] = phases_load.throughput(
            targets,
            account,
            loader,
            concurrency,
            sizes.load_rounds,
            sizes.load_seconds,
            sizes.load_warmup,
        )
    step("streaming at concurrency 1 and 16")
    out["streaming"] = {
        "c1": run_async(phases.streaming(
            targets, account, 1, sizes.stream_c1_rounds, sizes.stream_c1_per_round)),
        "c16": run_async(phases.streaming(
            targets, account, 16, sizes.stream_c16_rounds, sizes.stream_c16_per_worker)),
    }  # fmt: skip
    step(f"concurrent slow streams {sizes.ramp_levels}")
    out["streams_held"] = run_async(
        phases.streams_held(targets, account, sizes.ramp_levels, sizes.ramp_timeout)
    )
    return out


T0 = time.perf_counter()


def step(text: str) -> None:
    print(f"[bench {time.perf_counter() - T0:6.1f}s] {text} ...", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    if args.no_100k:
        sizes = replace(sizes, growth_total=min(sizes.growth_total, 10_000))
    fd_limit = procs.raise_fd_limit()
    loader_dir = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    loader = Loader(loader_dir, use_wrk=not args.no_wrk, install=not args.quick)
    report: dict[str, Any] = {"meta": meta(args, sizes, loader, fd_limit)}
    started = time.perf_counter()
    noise = Noise()
    try:
        with ExitStack() as stack:
            step("starting the fake upstream, Nexus and the rival gateways")
            upstream, port = start_upstream(loader_dir, sizes.chunks, sizes.slow_delay_ms)
            stack.callback(upstream.stop)
            targets = start_gateways(args, report, loader_dir, stack, port)
            step("are the upstream's bytes returned unchanged?")
            rivals.check_bytes(targets, report)
            account = phases.Accounting(procs.Meter(), upstream)
            report.update(measure(targets, account, loader, sizes))
            for target in targets:
                if target.proc:
                    report["memory"][target.name].update(procs.memory_mb(target.proc.pid))
            report["cpu_ms_per_request"] = account.meter.per_request_ms()
            report["upstream"] = upstream_summary(report)
            step("Nexus start-up times")
            report["startup"] = phases_load.startup(loader_dir, port, sizes.startup_runs)
            step(f"Nexus memory after {sizes.growth_first} and {sizes.growth_total} requests")
            report["memory_growth"] = phases_load.memory_growth(
                loader_dir,
                port,
                loader,
                sizes.growth_first,
                sizes.growth_total,
                report["throughput"]["c32"]["nexus"]["rps"],
                started + RUN_BUDGET - PLANNER_RESERVE,
            )
    finally:
        if args.keep_logs:
            print(f"logs kept in {loader_dir}", file=sys.stderr)
        else:
            shutil.rmtree(loader_dir, ignore_errors=True)
    step("planner micro-benchmark")
    report["planner"] = planner.run(decisions=sizes.planner_decisions)
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["noise"] = noise.finish()
    report["checks"] = checks(report)
    if args.baseline is not None:
        report["baseline"] = baseline_comparison(report, args.baseline)
    return report


def baseline_comparison(report: dict[str, Any], source: Path) -> dict[str, Any]:
    """This checkout against ``--baseline`` in the same run: added latency, c32 throughput and
    CPU per request of each, and the ratios (this / baseline)."""

    def commit(path: Path) -> str:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return done.stdout.strip() or "unknown"

    figures: dict[str, Callable[[str], Any]] = {
        "added_p50_ms": lambda t: report["latency_c1"][t]["added_p50_ms"],
        "added_p99_ms": lambda t: report["latency_c1"][t]["added_p99_ms"],
        "c32_rps": lambda t: report["throughput"]["c32"][t]["rps"],
        "cpu_ms_per_request_c32": lambda t: report["cpu_ms_per_request"][t]["json_c32"],
    }
    out: dict[str, Any] = {"commit": commit(Path.cwd()), "baseline_commit": commit(source)}
    for name, read in figures.items():
        try:
            now, before = read("nexus"), read(BASELINE)
        except (KeyError, TypeError):
            out[name] = None
            continue
        ratio = round(now / before, 3) if before else None
        out[name] = {"nexus": now, BASELINE: before, "ratio": ratio}
    return out


class Noise:
    """How busy the machine was with other work during the run: every core's busy CPU seconds
    minus this bench's own (servers and wrk included), and the load average at both ends."""

    def __init__(self) -> None:
        self.busy, self.own = procs.machine_busy_seconds(), procs.own_seconds()
        self.wall, self.load = time.perf_counter(), os.getloadavg()[0]

    def finish(self) -> dict[str, Any]:
        busy = procs.machine_busy_seconds() - self.busy
        foreign = max(0.0, busy - (procs.own_seconds() - self.own))
        wall = time.perf_counter() - self.wall
        return {
            "loadavg_1m_start": round(self.load, 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
            "machine_busy_cpu_s": round(busy, 1),
            "foreign_cpu_s": round(foreign, 1),
            "foreign_cores": round(foreign / wall, 2),
        }


def upstream_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The fake upstream's ceiling (direct at c32) and its headroom over each gateway."""
    c32 = report["throughput"]["c32"]
    ceiling = c32["direct"]["rps"]
    return {
        "impl": "asgi (uvicorn, uvloop, httptools)",
        "ceiling_rps": ceiling,
        "cpu_ms_per_request": report["cpu_ms_per_request"].get("upstream", {}).get("json_c32"),
        "headroom": {
            n: round(ceiling / row["rps"], 2)
            for n, row in c32.items()
            if n != "direct" and row["rps"]
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = run(args)
    suffix = "-quick" if args.quick else ""
    out = args.out or RESULTS / f"{datetime.date.today().isoformat()}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(planner.table(report["planner"]))
    if "baseline" in report:
        print(f"this checkout against --baseline: {json.dumps(report['baseline'], indent=2)}")
    print_report(report)  # ends with the table of every gateway side by side
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
