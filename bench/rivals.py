"""The other gateways measured beside Nexus, each optional, and whether each relays the upstream's
bytes unchanged.

Every rival is installed and started by its own module (``vllm_router``, ``portkey``,
``litellm_proxy``); one that cannot be installed or started is left out of the run and
``rivals.<name>.why_not`` (and ``<name>_error``, as ``litellm_error`` always was) says why. Each
measured one becomes a :class:`~bench.targets.Target` with the same headers as every other target
plus those it needs to find the upstream (Portkey's provider and custom host).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import litellm_proxy, portkey, procs, vllm_router
from bench.http1 import Connection, Reply
from bench.load import run_async
from bench.phases import TRANSPORT_ERRORS
from bench.targets import Target

Headers = tuple[tuple[str, str], ...]


def _no_headers(_upstream_port: int) -> Headers:
    return ()


@dataclass(frozen=True)
class Rival:
    """One gateway to compare with, as the bench installs and starts it."""

    name: str  # the target's name in the JSON
    label: str  # its column in the printed tables
    skip_flag: str
    start: Callable[[Path, int], tuple[procs.Proc, int]]
    unavailable: type[RuntimeError]
    version: Callable[[], str | None]
    headers: Callable[[int], Headers] = _no_headers

    @property
    def error_key(self) -> str:
        return f"{self.name.replace('-', '_')}_error"


RIVALS = (
    Rival("vllm-router", "vllm-router", "--skip-vllm-router", vllm_router.start,
          vllm_router.VLLMRouterUnavailable, vllm_router.version),
    Rival("portkey", "Portkey", "--skip-portkey", portkey.start, portkey.PortkeyUnavailable,
          portkey.version, portkey.headers),
    Rival("litellm", "LiteLLM proxy", "--skip-litellm", litellm_proxy.start,
          litellm_proxy.LiteLLMUnavailable, litellm_proxy.version),
)  # fmt: skip
LABELS = {
    "direct": "direct",
    "nexus": "Nexus",
    "nexus-auto": "Nexus workers=auto",
    **{r.name: r.label for r in RIVALS},
}


def add_flags(parser: argparse.ArgumentParser) -> None:
    for rival in RIVALS:
        parser.add_argument(
            rival.skip_flag, action="store_true", help=f"do not start {rival.label}"
        )


def skipped_by(args: argparse.Namespace, rival: Rival) -> str | None:
    """The flag that leaves ``rival`` out of this run, if any."""
    if args.quick:
        return "--quick"
    flag = rival.skip_flag.removeprefix("--").replace("-", "_")
    return rival.skip_flag if getattr(args, flag, False) else None


def start_rivals(
    args: argparse.Namespace,
    report: dict[str, Any],
    workdir: Path,
    stack: ExitStack,
    upstream_port: int,
    headers: Headers,
    on_ready: Callable[[Target], None] = lambda _target: None,
) -> list[Target]:
    """Start every rival not skipped (``on_ready`` is called as soon as each answers);
    ``report["rivals"]`` says what each is, or why it is not measured."""
    targets: list[Target] = []
    report["rivals"] = {}
    for rival in RIVALS:
        entry: dict[str, Any] = {"label": rival.label, "measured": False}
        report["rivals"][rival.name] = entry
        flag = skipped_by(args, rival)
        if flag is not None:
            entry["why_not"] = f"skipped ({flag})"
            continue
        try:
            proc, port = rival.start(workdir, upstream_port)
        except (rival.unavailable, OSError) as exc:
            entry["why_not"] = report[rival.error_key] = str(exc)
            print(f"{rival.label} unavailable: {exc}", file=sys.stderr)
            continue
        stack.callback(proc.stop)
        argv = proc.popen.args
        command = " ".join(map(str, argv)) if isinstance(argv, list) else str(argv)
        entry.update(measured=True, version=rival.version(), command=command)
        targets.append(Target(rival.name, port, proc, headers + rival.headers(upstream_port)))
        on_ready(targets[-1])
    return targets


def versions() -> dict[str, str | None]:
    """Each rival's installed version (None when it is not installed)."""
    return {rival.name: rival.version() for rival in RIVALS}


async def _fetch(target: Target, request: bytes) -> Reply | str:
    connection = Connection("127.0.0.1", target.port)
    try:
        return await connection.send(request)
    except TRANSPORT_ERRORS as exc:
        return type(exc).__name__
    finally:
        await connection.close()


def _compare(reply: Reply | str, expected: Reply | str) -> dict[str, Any]:
    if isinstance(reply, str) or isinstance(expected, str):
        return {"unchanged": False, "error": reply if isinstance(reply, str) else "direct failed"}
    same = reply.status == expected.status and reply.body == expected.body
    out: dict[str, Any] = {"unchanged": same, "status": reply.status, "bytes": len(reply.body)}
    if not same:
        pairs = zip(reply.body, expected.body, strict=False)
        out["first_difference_at"] = next(
            (i for i, (a, b) in enumerate(pairs) if a != b),
            min(len(reply.body), len(expected.body)),
        )
        out["expected_bytes"] = len(expected.body)
    return out


async def upstream_bytes(targets: Sequence[Target]) -> dict[str, dict[str, Any]]:
    """Whether each gateway returns the upstream's bytes unchanged: one JSON and one streamed
    answer each, bodies (de-chunked) compared with what the direct call returns."""
    replies = {
        t.name: (await _fetch(t, t.json_request()), await _fetch(t, t.stream_request()))
        for t in targets
    }
    direct_json, direct_stream = replies["direct"]
    out: dict[str, dict[str, Any]] = {}
    for name, (json_reply, stream_reply) in replies.items():
        if name == "direct":
            continue
        json_check = _compare(json_reply, direct_json)
        stream_check = _compare(stream_reply, direct_stream)
        out[name] = {
            "unchanged": json_check["unchanged"] and stream_check["unchanged"],
            "json": json_check,
            "stream": stream_check,
        }
    return out


def check_bytes(targets: Sequence[Target], report: dict[str, Any]) -> None:
    """``report["upstream_bytes"]``, and each measured rival's verdict in ``rivals``."""
    report["upstream_bytes"] = run_async(upstream_bytes(targets))
    for name, entry in report.get("rivals", {}).items():
        if name in report["upstream_bytes"]:
            entry["upstream_bytes_unchanged"] = report["upstream_bytes"][name]["unchanged"]
