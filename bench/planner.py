"""Benchmark of the routing decision alone: ``plan()`` over 100 backends and 1,000 models.

Run ``.venv/bin/python bench/planner.py`` (``--help`` for sizes). Prints p50, p99 and mean per
decision (one ``plan()`` call plus reading the route reason, as the proxy does) for each strategy,
and writes ``bench/results/planner-<date>.json``. Target (performance.md): p50 <= 50 us.
A benchmark, not a test: the test suite only runs a tiny smoke version.

The fleet is seeded and fixed: 70 local restricted backends (tiers 1-3) and 30 cloud open
backends (tiers 2-5), each listing 10 to 60 of the 1,000 models; about 8 % are unhealthy,
cooling down or at capacity. The policy has 50 aliases, 100 fallback chains and 3 glob policies;
requests mix plain, vision/tools/JSON, restricted and flexible ones, with a few unknown models.

Each strategy runs twice: without quality figures, and (``<strategy>+quality``) with a quality
snapshot of ``max_pairs`` (2,000) (backend, model) pairs fed by real store records: about 5 %
ejected, 5 % recovering (probe draws), 10 % with a slow first token, the rest with a few errors.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import RESULTS, write_result
from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import QualitySnapshot
from nexus.backends.state import BackendView, ModelInfo, Snapshot, Status
from nexus.config.kinds import BUILTIN_KINDS, Zone
from nexus.config.model import RoutingConfig, Strategy
from nexus.config.quality import QualityConfig
from nexus.errors import Failure
from nexus.routing import RoutePlan, RoutingPolicy, TierMode, plan
from nexus.routing.requirements import Requirements

NOW = 10_000.0
TARGET_P50_US = 50.0


def model_names(count: int) -> list[str]:
    families = ("llama", "qwen", "mistral", "gpt", "secret", "big")
    return [f"{families[i % len(families)]}-{i}" for i in range(count)]


def build_fleet(backends: int, models: int, rng: random.Random) -> Snapshot:
    names = model_names(models)
    fleet = []
    for index in range(backends):
        cloud = index >= backends * 7 // 10
        listed = rng.sample(names, min(len(names), rng.randint(10, 60)))
        infos = {
            m: ModelInfo(m, rng.choice((None, 8192, 32768, 128000)), *_flags(rng)) for m in listed
        }
        fleet.append(_backend(index, cloud, infos, rng))
    return Snapshot(backends=tuple(fleet), taken_at=NOW)


def _flags(rng: random.Random) -> tuple[bool, bool, bool]:
    return rng.random() < 0.5, rng.random() < 0.7, rng.random() < 0.7


def _backend(
    index: int, cloud: bool, infos: dict[str, ModelInfo], rng: random.Random
) -> BackendView:
    roll = rng.random()
    return BackendView(
        name=f"{'cloud' if cloud else 'local'}-{index}",
        kind=BUILTIN_KINDS["openai" if cloud else "vllm"],
        url=f"http://backend-{index}.test",
        zone=Zone.OPEN if cloud else Zone.RESTRICTED,
        tier=rng.randint(2, 5) if cloud else rng.randint(1, 3),
        priority=rng.choice((10, 20, 50, 50, 80)),
        max_concurrent=4 if roll < 0.1 else None,
        status=Status.UNHEALTHY if roll > 0.95 else Status.HEALTHY,
        models=infos,
        in_flight=4 if roll < 0.03 else rng.randint(0, 3),
        latency_ms=rng.uniform(50, 2000),
        next_probe_at=NOW + rng.uniform(0, 30),
        cooldown_until=NOW + 5 if 0.93 < roll <= 0.95 else None,
    )


def build_policy(models: int, strategy: Strategy, rng: random.Random) -> RoutingPolicy:
    names = model_names(models)
    aliases = {f"alias-{i}": rng.choice(names) for i in range(50)}
    fallbacks = {}
    for model in rng.sample(names, min(100, len(names))):
        fallbacks[model] = tuple(m for m in rng.sample(names, 2) if m != model)
    policies = [
        {"model_pattern": "secret-*", "privacy": "restricted"},
        {"model_pattern": "big-*", "min_tier": 3},
        {"model_pattern": "gpt-[0-9]*", "min_tier": 2},
    ]
    config = RoutingConfig(
        strategy=strategy, aliases=aliases, fallbacks=fallbacks, policies=policies
    )
    return RoutingPolicy(config)


def build_requests(
    models: int, count: int, policy: RoutingPolicy, rng: random.Random
) -> list[Requirements]:
    names = [*model_names(models), *(f"alias-{i}" for i in range(50)), "no-such-model"]
    requests = []
    for _ in range(count):
        requested = rng.choice(names)
        model = policy.resolve(requested)
        rule = policy.constraint_for(model)
        restricted = rule.privacy is Zone.RESTRICTED or rng.random() < 0.1
        requests.append(
            Requirements(
                model=model,
                requested_model=requested,
                vision=rng.random() < 0.1,
                tools=rng.random() < 0.2,
                json_mode=rng.random() < 0.1,
                input_tokens=rng.choice((20, 500, 4000, 20000)),
                privacy=Zone.RESTRICTED if restricted else Zone.OPEN,
                min_tier=rule.min_tier,
                tier_mode=TierMode.FLEXIBLE if rng.random() < 0.1 else TierMode.STRICT,
            )
        )
    return requests


def build_quality(snapshot: Snapshot, rng: random.Random, pairs: int = 2_000) -> QualitySnapshot:
    """A quality snapshot of ``pairs`` random (backend, model) pairs of the fleet, recorded
    through a real :class:`QualityStore` on a fixed clock (see the module docstring)."""
    settings = QualityConfig(max_pairs=pairs)
    store = QualityStore(settings, clock=lambda: NOW - 60.0)
    every = [(b.name, model) for b in snapshot.backends for model in b.models]
    for backend, model in rng.sample(every, min(pairs, len(every))):
        draw = rng.random()
        ttft = rng.uniform(3.5, 9.0) if 0.10 <= draw < 0.20 else rng.uniform(0.05, 0.8)
        for _ in range(12):
            store.record_success(backend, model, ttft_s=ttft, total_s=ttft + 1.0)
        failures = 5 if draw < 0.10 else rng.randrange(3)
        for _ in range(failures):
            store.record_failure(backend, model, Failure.SERVER_ERROR)
        if draw < 0.05:  # ejected until after NOW; the others from 0.05 to 0.10 recover by NOW
            store.record_failure(backend, model, Failure.SERVER_ERROR)
    return store.view()


def measure(
    snapshot: Snapshot,
    policy: RoutingPolicy,
    requests: list[Requirements],
    seed: int,
    quality: QualitySnapshot,
) -> tuple[dict[str, float], dict[str, float]]:
    """Time every decision without and with ``quality``, interleaved request by request (so a
    busy moment of the machine hits both alike); p50, p99 and mean in microseconds, and the share
    routed, for each."""
    plain_rng, quality_rng = random.Random(seed), random.Random(seed)
    for requirements in requests[: min(len(requests), 500)]:  # warm-up
        plan(requirements, snapshot, policy, now=NOW, rng=plain_rng)
        plan(requirements, snapshot, policy, now=NOW, rng=quality_rng, quality=quality)
    timings: tuple[list[float], list[float]] = ([], [])
    routed = [0, 0]
    clock = time.perf_counter_ns
    for rotation, requirements in enumerate(requests):
        for index, (rng, figures) in enumerate(((plain_rng, None), (quality_rng, quality))):
            start = clock()
            result = plan(
                requirements, snapshot, policy, now=NOW, rotation=rotation, rng=rng, quality=figures
            )
            if isinstance(result, RoutePlan):
                _ = result.route_reason
                routed[index] += 1
            timings[index].append((clock() - start) / 1000)
    return _summary(timings[0], routed[0]), _summary(timings[1], routed[1])


def _summary(timings: list[float], routed: int) -> dict[str, float]:
    timings.sort()
    return {
        "p50_us": round(statistics.median(timings), 2),
        "p99_us": round(timings[int(len(timings) * 0.99) - 1], 2),
        "mean_us": round(statistics.fmean(timings), 2),
        "routed_share": round(routed / len(timings), 3),
    }


def run(
    backends: int = 100, models: int = 1000, decisions: int = 20_000, seed: int = 1
) -> dict[str, Any]:
    """Measure every strategy over one seeded fleet; the JSON-ready result."""
    rng = random.Random(seed)
    snapshot = build_fleet(backends, models, rng)
    quality = build_quality(snapshot, random.Random(seed + 2))
    results = {}
    for strategy in Strategy:
        policy = build_policy(models, strategy, random.Random(seed))
        requests = build_requests(models, decisions, policy, random.Random(seed + 1))
        plain, with_quality = measure(snapshot, policy, requests, seed, quality)
        results[strategy.value] = plain
        results[f"{strategy.value}+quality"] = with_quality
    return {
        "benchmark": "planner",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "backends": backends,
        "models": models,
        "decisions": decisions,
        "target_p50_us": TARGET_P50_US,
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"plan(): {report['backends']} backends, {report['models']} models, "
        f"{report['decisions']} decisions per strategy (target p50 <= {TARGET_P50_US:g} us)",
        f"{'strategy':<23}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'routed':>9}",
    ]
    for name, row in report["results"].items():
        lines.append(
            f"{name:<23}{row['p50_us']:>10.1f}{row['p99_us']:>10.1f}{row['mean_us']:>10.1f}"
            f"{row['routed_share']:>9.0%}"
        )
    return "\n".join(lines)


def write(report: dict[str, Any], folder: Path = RESULTS) -> Path:
    return write_result("planner", report, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the routing planner.")
    parser.add_argument("--backends", type=int, default=100)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run(args.backends, args.models, args.decisions, args.seed)
    print(table(report))
    print(f"written: {write(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
