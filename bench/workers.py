"""Throughput of `nexus serve` with ``[server] workers = 2`` against ``workers = 1``, on this
machine, against the fast fake upstream (``bench/upstream.py``), measured with wrk.

``python -m bench.workers [--duration 10] [--connections 32] [--threads 2] [--rounds 2]
[--redis-url redis://127.0.0.1:6379/0] [--max-concurrent N]``

With ``--redis-url`` both configurations share state through that Redis (``[state] backend =
"redis"``); with ``--max-concurrent`` the backend has that limit, so every attempt is admitted
through Redis (the one request-path call to Redis).

Each configuration is started fresh (no discovery, probes every hour, warning-level logs so that
logging does not dominate), warmed up for 2 s, then measured ``--rounds`` times in alternation
(1, 2, 1, 2, ...) so that machine noise hits both. Prints each round, the median req/s of each
and the ratio; ``--json PATH`` also writes them. Everything runs on 127.0.0.1; wrk, the fake and
Nexus share the machine's cores, so the ratio is this machine's, not a law.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import Proc, free_port, start, wait_ready

BODY = '{"model": "bench-model", "messages": [{"role": "user", "content": "Say hello."}]}'
LUA = f"""wrk.method = "POST"
wrk.body = [[{BODY}]]
wrk.headers["Content-Type"] = "application/json"
"""
CONFIG = """[server]
workers = {workers}
[discovery]
enabled = false
[health_check]
interval_seconds = 3600
[logging]
level = "warning"
{state}[[backends]]
name = "fake"
url = "http://127.0.0.1:{upstream}"
type = "vllm"
{limit}"""


def wrk(url: str, script: Path, *, threads: int, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run: req/s and the count of failed answers."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(non_2xx.group(1)) if non_2xx else 0
    failed += sum(int(n) for n in errors.groups()) if errors else 0
    return {"rps": float(rps.group(1)), "failed": failed}


def start_nexus(
    workers: int, upstream: int, folder: Path, args: argparse.Namespace
) -> tuple[Proc, str]:
    config = folder / f"nexus-{workers}.toml"
    state = (
        ""
        if args.redis_url is None
        else f'[state]\nbackend = "redis"\nredis_url = "{args.redis_url}"\n'
    )
    limit = "" if args.max_concurrent is None else f"max_concurrent = {args.max_concurrent}\n"
    config.write_text(CONFIG.format(workers=workers, upstream=upstream, state=state, limit=limit))
    port = free_port()
    nexus = str(Path(sys.executable).with_name("nexus"))
    argv = [nexus, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = start(f"nexus-workers-{workers}", argv, folder / f"nexus-{workers}.log")
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/health/ready", timeout=30)
    return proc, url


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    script = folder / "chat.lua"
    script.write_text(LUA)
    upstream_port = free_port()
    upstream = start(
        "upstream",
        [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)],
        folder / "upstream.log",
    )
    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    try:
        wait_ready(upstream, f"http://127.0.0.1:{upstream_port}/v1/models", timeout=30)
        servers = {n: start_nexus(n, upstream_port, folder, args) for n in (1, 2)}
        try:
            load = {"threads": args.threads, "connections": args.connections}
            for _, url in servers.values():
                wrk(f"{url}/v1/chat/completions", script, seconds=2, **load)  # warm-up
            for index in range(args.rounds):
                for workers, (_, url) in servers.items():
                    result = wrk(
                        f"{url}/v1/chat/completions", script, seconds=args.duration, **load
                    )
                    rounds[workers].append(result)
                    print(f"round {index + 1}: workers={workers}: {result['rps']:.0f} req/s"
                          f" ({result['failed']} failed)", flush=True)  # fmt: skip
        finally:
            for proc, _ in servers.values():
                proc.stop(timeout=20)
    finally:
        upstream.stop()
    one = statistics.median(r["rps"] for r in rounds[1])
    two = statistics.median(r["rps"] for r in rounds[2])
    return {
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": {str(k): v for k, v in rounds.items()},
        "workers_1_rps": round(one),
        "workers_2_rps": round(two),
        "ratio": round(two / one, 2),
        "shared_state": args.redis_url is not None,
        "max_concurrent": args.max_concurrent,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nexus serve: 2 workers against 1.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--redis-url", default=None, help="share state through this Redis")
    parser.add_argument("--max-concurrent", type=int, default=None, help="backend limit")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.workers: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nexus-bench-workers-") as folder:
        results = measure(args, Path(folder))
    print(
        f"workers=1: {results['workers_1_rps']} req/s, workers=2: {results['workers_2_rps']} "
        f"req/s, ratio {results['ratio']} ({results['cpus']} CPUs, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
