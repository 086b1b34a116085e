"""With several workers, the supervising parent only binds, starts and watches them: it must not
hold the gateway's libraries (measured: 73 MB with them, ~47 MB without), which every worker
imports for itself."""

from __future__ import annotations

import subprocess
import sys


def test_the_server_module_imports_no_web_framework_nor_http_client() -> None:
    script = (
        "import sys, nexus.server\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'aiohttp', 'uvicorn', 'nexus.app',"
        " 'nexus.gateway') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
