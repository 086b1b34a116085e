"""Added cost of Nexus's translated path over calling ``litellm.acompletion`` directly.

Run ``.venv/bin/python bench/translated.py`` (``--help`` for counts). A fake Anthropic Messages
server (``tests/fakes/anthropic.py``) runs in its own process, so this process's CPU time is
the client side only. Each round sends the same request both ways, in alternating order:

- **direct**: ``litellm.acompletion(...)`` with the same arguments Nexus passes (offline,
  ``max_retries=0``, explicit ``max_tokens``), the response left as LiteLLM's object; for a
  stream, every chunk iterated;
- **nexus**: :func:`nexus.upstream.translated.open_translated` and reading its reply, i.e. the
  argument filtering, the conversion to Nexus's values and the OpenAI rendering (JSON bytes or
  SSE events plus ``[DONE]``) on top of the same LiteLLM call.

Printed: median and mean wall time and CPU time per request for each, and the difference
(nexus - direct). Target: at most +0.5 ms. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from nexus.backends.state import BackendView, Status
from nexus.config.kinds import Zone, kind_of
from nexus.upstream import translated

MODEL = "claude-3-5-sonnet-20241022"
KEY = "sk-ant-test-key"
TARGET_MS = 0.5
SERVER = (
    "import sys; from tests.fakes.anthropic import FakeAnthropic;"
    "fake = FakeAnthropic().start(); print(fake.url, flush=True); sys.stdin.read(); fake.stop()"
)


def start_server() -> tuple[subprocess.Popen[str], str]:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def backend(url: str) -> BackendView:
    kind = kind_of("anthropic")
    assert kind is not None
    return BackendView(
        name="claude",
        kind=kind,
        url=url,
        zone=Zone.OPEN,
        tier=1,
        priority=1,
        max_concurrent=None,
        status=Status.HEALTHY,
        api_key_env="ANTHROPIC_API_KEY",
    )


def callers(url: str, stream: bool) -> dict[str, Callable[[], Awaitable[Any]]]:
    litellm = translated.warm_up()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello to the bench"}]}
    view = backend(url)

    async def direct() -> None:
        response = await litellm.acompletion(
            model=f"anthropic/{MODEL}",
            messages=body["messages"],
            api_base=url,
            api_key=KEY,
            max_retries=0,
            num_retries=0,
            timeout=30.0,
            drop_params=False,
            max_tokens=8192,
            stream=stream,
        )
        if stream:
            async for _ in response:
                pass

    async def nexus() -> None:
        reply = await translated.open_translated(
            backend=view,
            path="/chat/completions",
            body={**body, "stream": stream},
            model=MODEL,
            api_key=SecretStr(KEY),
            stream=stream,
            timeout=30.0,
        )
        try:
            async for _ in reply.chunks():
                pass
        finally:
            await reply.aclose()

    return {"direct": direct, "nexus": nexus}


async def measure(url: str, stream: bool, rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    ways = callers(url, stream)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for index in range(warmup + rounds):
        order = list(ways) if index % 2 == 0 else list(reversed(ways))
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            await ways[name]()
            sample = (time.perf_counter() - wall, time.process_time() - cpu)
            if index >= warmup:
                samples[name].append(sample)
    await translated.shutdown()
    return {name: summary(values) for name, values in samples.items()}


def summary(values: list[tuple[float, float]]) -> dict[str, float]:
    walls = [wall * 1000 for wall, _ in values]
    cpus = [cpu * 1000 for _, cpu in values]
    return {
        "wall_median_ms": statistics.median(walls),
        "wall_mean_ms": statistics.fmean(walls),
        "cpu_median_ms": statistics.median(cpus),
        "cpu_mean_ms": statistics.fmean(cpus),
    }


def report(kind: str, result: dict[str, dict[str, float]]) -> None:
    print(f"\n{kind}")
    print(f"  {'':8} {'wall p50':>9} {'wall mean':>10} {'cpu p50':>9} {'cpu mean':>9}  (ms)")
    for name, stats in result.items():
        values = [stats[k] for k in ("wall_median_ms", "wall_mean_ms", "cpu_median_ms")]
        print(
            f"  {name:8} " + " ".join(f"{v:9.3f}" for v in values) + f" {stats['cpu_mean_ms']:9.3f}"
        )
    delta = {k: result["nexus"][k] - result["direct"][k] for k in result["nexus"]}
    verdict = "ok" if delta["cpu_median_ms"] <= TARGET_MS else "OVER TARGET"
    print(
        f"  added    {delta['wall_median_ms']:+9.3f} {delta['wall_mean_ms']:+10.3f} "
        f"{delta['cpu_median_ms']:+9.3f} {delta['cpu_mean_ms']:+9.3f}  "
        f"(target <= +{TARGET_MS} ms CPU: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="measured requests per way")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured rounds first")
    args = parser.parse_args()
    process, url = start_server()
    try:
        for stream in (False, True):
            result = asyncio.run(measure(url, stream, args.rounds, args.warmup))
            report("stream (3 text deltas)" if stream else "JSON", result)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
