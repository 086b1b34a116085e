"""Start-up stays fast and offline: local-only configs never import LiteLLM; after warm-up the
first translated request pays no import; nothing connects anywhere but 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(120)
#: Variables Nexus must set itself: the child starts without them.
OFFLINE_VARIABLES = ("LITELLM_OFFLINE_MODE", "LITELLM_LOCAL_MODEL_COST_MAP", "TIKTOKEN_CACHE_DIR")


def probe(mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-m", "tests.upstream.startup_probe", mode],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def test_local_backends_never_import_litellm() -> None:
    report = probe("local")
    assert report == {"statuses": [200, 200, 200], "litellm": False}


def test_first_translated_request_after_warm_up_pays_no_import() -> None:
    report = probe("warm")
    assert report["statuses"] == [200]
    assert report["new_litellm_modules"] == []
    assert report["seconds"] < 2.0  # the import alone takes about 2.5 s


def test_health_answers_at_once_while_litellm_loads_in_a_thread() -> None:
    report = probe("health")
    assert report["calls_while_loading"] >= 5
    assert report["slowest"] < 1.0


def test_no_outbound_connection_in_start_up_requests_and_token_counting() -> None:
    report = probe("guard")
    assert report["statuses"] == [200, 200, 200]
    assert report["exact"] is True
    assert report["attempts"] == []
