"""The probe soak of issue 14 (defect 2): `nexus serve` in front of servers whose keep-alive
closes idle connections after exactly the probe interval, probed every 1 s and every 5 s, for
two minutes with requests flowing at irregular gaps around that interval. A healthy backend must
never be ejected and no request may get a 503. Before the fix, 13 backends were ejected and 518
requests answered 503 in 130 s of the same load."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.configs import CHAT, Gateway, backend, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SOAK_SECONDS = 120.0
INTERVALS = (1, 5)
FAKES_PER_GATEWAY = 3


def drive(gw: Gateway, interval: float, stop: threading.Event, statuses: Counter[int]) -> None:
    """Chat requests at random gaps of 0.2 to 1.5 intervals until ``stop``."""
    rng = random.Random(interval)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        while not stop.is_set():
            statuses[client.post(CHAT, json=body).status_code] += 1
            stop.wait(rng.uniform(0.2, 1.5) * interval)


def test_probes_at_the_servers_keep_alive_eject_nothing(tmp_path: Path) -> None:
    with ExitStack() as stack:
        gateways: dict[int, Gateway] = {}
        for interval in INTERVALS:
            fakes = []
            for _ in range(FAKES_PER_GATEWAY):
                fake = FakeOpenAI()
                fake.keep_alive_seconds = interval
                fake.set_models(FakeModel("m"))
                fakes.append(stack.enter_context(fake))
            backends = [backend(f"b{i}", fake.url) for i, fake in enumerate(fakes)]
            directory = tmp_path / f"every-{interval}s"
            directory.mkdir()
            checks = {"interval_seconds": interval, "timeout_seconds": 2}
            gateways[interval] = stack.enter_context(
                gateway(directory, backends, health_check=checks)
            )
        stop = threading.Event()
        statuses: dict[int, Counter[int]] = {interval: Counter() for interval in INTERVALS}
        drivers = [
            threading.Thread(target=drive, args=(gateways[i], i, stop, statuses[i]))
            for i in INTERVALS
        ]
        for thread in drivers:
            thread.start()
        time.sleep(SOAK_SECONDS)
        stop.set()
        for thread in drivers:
            thread.join(timeout=15)
        for interval, gw in gateways.items():
            log = gw.served.stderr()
            assert set(gw.statuses().values()) == {"healthy"}
            assert " is unhealthy" not in log, f"every {interval} s: a backend was ejected"
            assert set(statuses[interval]) == {200}, f"every {interval} s: {statuses[interval]}"
            assert sum(statuses[interval].values()) >= SOAK_SECONDS / (1.5 * interval)
            print(f"probes every {interval} s: {dict(statuses[interval])} in {SOAK_SECONDS} s")
