"""The measurements made with the asyncio client, interleaved: each round visits every target in
turn (the order rotates), so machine noise lands on all of them alike.

- ``latency_c1``: one keep-alive connection per target, small JSON requests one at a time;
- ``streaming``: SSE streams, time to first body byte and total time, at concurrency 1 and 16;
- ``streams_held``: ramps of many slow streams opened at once; how many complete fully.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from bench.http1 import Connection, Reply, percentiles
from bench.targets import Target

TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass
class Accounting:
    """CPU of the gateway (and of the upstream) during each target's slice of a phase."""

    meter: procs.Meter
    upstream: procs.Proc
    _open: dict[str, tuple[float, float]] = field(default_factory=dict)

    def begin(self, target: Target) -> None:
        gateway = procs.cpu_seconds(target.proc.pid) if target.proc else 0.0
        self._open[target.name] = (gateway, procs.cpu_seconds(self.upstream.pid))

    def end(self, target: Target, phase: str, requests: int) -> None:
        gateway, upstream = self._open.pop(target.name)
        if target.proc:
            self.meter.add(
                target.name, phase, procs.cpu_seconds(target.proc.pid) - gateway, requests
            )
        self.meter.add("upstream", phase, procs.cpu_seconds(self.upstream.pid) - upstream, requests)


def rotated(targets: Sequence[Target], round_index: int) -> list[Target]:
    shift = round_index % len(targets)
    return [*targets[shift:], *targets[:shift]]


def stream_ok(reply: Reply) -> bool:
    """A stream that ended properly: 200, ``[DONE]`` at the end, no error event."""
    return reply.status == 200 and b"[DONE]" in reply.body[-64:] and b'"error"' not in reply.body


def added(stats: dict[str, dict[str, Any]], key: str = "") -> None:
    """Add ``added_p50_ms``/``added_p99_ms`` (target minus direct) to every non-direct entry."""
    direct = stats.get("direct", {})
    base = direct.get(key, {}) if key else direct
    for name, entry in stats.items():
        row = entry.get(key, {}) if key else entry
        if name == "direct" or not row or not base:
            continue
        for p in ("p50_ms", "p99_ms"):
            row[f"added_{p}"] = round(row[p] - base[p], 3)


async def _sequential(
    connection: Connection, request: bytes, count: int, check_stream: bool
) -> tuple[list[Reply], int]:
    replies, errors = [], 0
    for _ in range(count):
        try:
            reply = await connection.send(request)
        except TRANSPORT_ERRORS:
            errors += 1
            continue
        ok = stream_ok(reply) if check_stream else reply.status == 200
        if ok:
            replies.append(reply)
        else:
            errors += 1
    return replies, errors


async def latency_c1(
    targets: Sequence[Target], account: Accounting, rounds: int, per_round: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Concurrency 1, non-streaming: p50/p99 per target and added latency vs direct."""
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    errors = dict.fromkeys(samples, 0)
    for target in targets:
        await _sequential(
            Connection("127.0.0.1", target.port), target.json_request(), warmup, False
        )
    for index in range(rounds):
        for target in rotated(targets, index):
            # A fresh connection per slice, opened by one untimed request: a kept one may have
            # been closed by the server's keep-alive timeout while the other targets ran.
            connection = Connection("127.0.0.1", target.port)
            await _sequential(connection, target.json_request(), 1, False)
            account.begin(target)
            replies, failed = await _sequential(connection, target.json_request(), per_round, False)
            account.end(target, "json_c1", per_round)
            await connection.close()
            samples[target.name] += [r.total for r in replies]
            errors[target.name] += failed
    stats = {name: {**percentiles(s), "errors": errors[name]} for name, s in samples.items()}
    added(stats)
    return stats


async def _stream_worker(target: Target, count: int) -> tuple[list[Reply], int]:
    connection = Connection("127.0.0.1", target.port)
    try:
        return await _sequential(connection, target.stream_request(), count, True)
    finally:
        await connection.close()


async def streaming(
    targets: Sequence[Target], account: Accounting, concurrency: int, rounds: int, per_worker: int
) -> dict[str, dict[str, Any]]:
    """Fast streams at ``concurrency``: TTFB and total time per target, added TTFB vs direct."""
    ttfb: dict[str, list[float]] = {t.name: [] for t in targets}
    total: dict[str, list[float]] = {t.name: [] for t in targets}
    errors = dict.fromkeys(ttfb, 0)
    for target in targets:  # warm-up
        await asyncio.gather(*(_stream_worker(target, 2) for _ in range(concurrency)))
    phase = f"stream_c{concurrency}"
    for index in range(rounds):
        for target in rotated(targets, index):
            account.begin(target)
            results = await asyncio.gather(
                *(_stream_worker(target, per_worker) for _ in range(concurrency))
            )
            account.end(target, phase, concurrency * per_worker)
            for replies, failed in results:
                ttfb[target.name] += [r.ttfb for r in replies]
                total[target.name] += [r.total for r in replies]
                errors[target.name] += failed
    stats: dict[str, dict[str, Any]] = {
        name: {"ttfb": percentiles(ttfb[name]), "total": percentiles(total[name]),
               "errors": errors[name]}
        for name in ttfb
    }  # fmt: skip
    added(stats, "ttfb")
    added(stats, "total")
    return stats


async def _one_slow_stream(target: Target, gate: asyncio.Event) -> str:
    """ "ok", or why the stream failed (an HTTP status, "incomplete" or the exception's name)."""
    connection = Connection("127.0.0.1", target.port)
    try:
        await gate.wait()
        reply = await connection.send(target.stream_request(slow=True))
    except TRANSPORT_ERRORS as exc:
        return type(exc).__name__
    finally:
        await connection.close()
    if stream_ok(reply):
        return "ok"
    return f"HTTP {reply.status}" if reply.status != 200 else "incomplete"


async def _level(target: Target, streams: int, timeout: float) -> dict[str, Any]:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_one_slow_stream(target, gate)) for _ in range(streams)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    gate.set()
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcomes = Counter(
        "timeout" if task.cancelled() else task.result() if not task.exception() else "error"
        for task in tasks
    )
    ok = outcomes.pop("ok", 0)
    return {
        "ok": ok,
        "failed": streams - ok,
        "seconds": round(time.perf_counter() - started, 2),
        "failures": dict(outcomes),
    }


async def streams_held(
    targets: Sequence[Target], account: Accounting, levels: Sequence[int], timeout: float
) -> dict[str, dict[str, Any]]:
    """Ramp the number of slow streams open at once; ``max_ok`` is the largest level that
    completed fully. A target stops ramping after its first incomplete level."""
    result: dict[str, dict[str, Any]] = {t.name: {"levels": {}, "max_ok": 0} for t in targets}
    active = list(targets)
    for level in levels:
        for target in list(active):
            account.begin(target)
            outcome = await _level(target, level, timeout)
            account.end(target, "streams_held", level)
            result[target.name]["levels"][str(level)] = outcome
            if outcome["failed"]:
                active.remove(target)
            else:
                result[target.name]["max_ok"] = level
            await asyncio.sleep(0.5)  # let closed sockets settle between levels
    return result
