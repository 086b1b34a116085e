"""Record the cassettes of :mod:`tests.upstream.cassette_scenarios` (run by
``scripts/record-cassettes``).

``--fakes`` records every scenario against the local fake servers (how the committed cassettes
were made: this machine has no internet and no keys). Without it, the real APIs are used and
``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY`` and ``OPENAI_API_KEY`` must all be set; scenarios that
cannot be provoked on demand (a 429, a stream failing midway) keep their fake-made cassettes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import ExitStack
from typing import Any

from nexus.errors import UpstreamError
from nexus.upstream import translated
from tests.fakes import FakeAnthropic, FakeGemini, FakeModel, FakeOpenAI
from tests.upstream.cassette_scenarios import KEY_ENV, REAL_URLS, SCENARIOS, Scenario, recorder, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="record-cassettes", description=__doc__)
    parser.add_argument("--fakes", action="store_true", help="record against the local fakes")
    args = parser.parse_args(argv)
    if not args.fakes:
        missing = [name for name in KEY_ENV.values() if not os.environ.get(name, "").strip()]
        if missing:
            print(
                f"record-cassettes: {', '.join(missing)} not set. Recording against the real "
                "APIs needs real keys (and spends a few tokens); use --fakes to record against "
                "the local fake servers instead. Nothing was changed.",
                file=sys.stderr,
            )
            return 2
    translated.warm_up()
    with ExitStack() as stack:
        fakes: dict[str, Any] = {}
        if args.fakes:
            fakes = {
                "anthropic": stack.enter_context(FakeAnthropic()),
                "google": stack.enter_context(FakeGemini()),
                "openai": stack.enter_context(FakeOpenAI()),
            }
            fakes["openai"].set_models(FakeModel("gpt-4o-mini"))
        for scenario in SCENARIOS:
            if not args.fakes and not scenario.real:
                print(f"kept     {scenario.cassette.relative_to(scenario.cassette.parents[2])}")
                continue
            outcome = asyncio.run(_record(scenario, fakes.get(scenario.provider)))
            print(
                f"recorded {scenario.cassette.relative_to(scenario.cassette.parents[2])}: {outcome}"
            )
    return 0


async def _record(scenario: Scenario, fake: Any) -> str:
    if fake is not None:
        fake.reset()
        scenario.arrange(fake)
        url, key = fake.url, fake.api_key or "sk-fake"
    else:
        url, key = REAL_URLS[scenario.provider], os.environ[KEY_ENV[scenario.provider]]
    scenario.cassette.parent.mkdir(parents=True, exist_ok=True)
    scenario.cassette.unlink(missing_ok=True)
    with recorder("all").use_cassette(str(scenario.cassette)):
        result = await run(scenario, url, key)
    await translated.shutdown()
    if isinstance(result, UpstreamError):
        return f"{type(result).__name__}: {result.message}"
    return f"HTTP {result[0]}, {len(result[1])} bytes"


if __name__ == "__main__":
    sys.exit(main())
