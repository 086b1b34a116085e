"""This checkout against another one, JSON chat at concurrency 32 only, in many interleaved rounds.

``python -m bench.compare BASELINE_DIR [--rounds 12] [--seconds 3]``

``bench.run --baseline`` measures everything in three rounds; on a shared machine the c32 rate of
one round swings by a third, so a refactoring's "within noise" needs more rounds of the one figure.
Both gateways run in front of the same fake upstream and take turns (the order rotates each
round). Prints the median req/s, each round, and the CPU per request of both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench import phases, phases_load, procs
from bench.load import Loader
from bench.run import BASELINE, HEADERS
from bench.targets import Target, start_nexus, start_upstream


def compare(baseline: Path, rounds: int, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="nexus-compare-"))
    upstream, port = start_upstream(work, 20, 50.0)
    started = [upstream]
    try:
        now, now_port = start_nexus(work, port, "nexus")
        started.append(now)
        before, before_port = start_nexus(work, port, BASELINE, source=baseline.resolve())
        started.append(before)
        targets = [
            Target("nexus", now_port, now, HEADERS),
            Target(BASELINE, before_port, before, HEADERS),
        ]
        account = phases.Accounting(procs.Meter(), upstream)
        load = phases_load.throughput(targets, account, Loader(work), 32, rounds, seconds)
        cpu = account.meter.per_request_ms()
    finally:
        for proc in started:
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {}
    for name in ("nexus", BASELINE):
        row = load[name]
        out[name] = {
            "rps": row["rps"],
            "rounds_rps": row["rounds_rps"],
            "cpu_ms": cpu[name]["json_c32"],
        }
    out["ratio_rps"] = round(out["nexus"]["rps"] / out[BASELINE]["rps"], 3)
    out["ratio_cpu_ms"] = round(out["nexus"]["cpu_ms"] / out[BASELINE]["cpu_ms"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("baseline", type=Path, help="another checkout of Nexus")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(compare(args.baseline, args.rounds, args.seconds), indent=2))


if __name__ == "__main__":
    main()
