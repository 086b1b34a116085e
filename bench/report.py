"""The targets of ``docs``' performance design checked against one run, and the printed tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

Row = dict[str, Any]
#: The column of ``nexus-auto`` (``bench.targets.NEXUS_AUTO``): Nexus with ``workers = "auto"``.
NEXUS_AUTO_LABEL = "Nexus workers=auto"
FIXED_LABELS = {"direct": "direct", "nexus": "Nexus", "nexus-auto": NEXUS_AUTO_LABEL}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, 3)
    return None


def _check(measure: str, target: str, value: Any, ok: bool | None, **extra: Any) -> Row:
    status = "n/a" if ok is None else ("met" if ok else "NOT met")
    return {"measure": measure, "target": target, "nexus": value, "status": status, **extra}


def _le(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value <= limit


def checks(r: dict[str, Any]) -> list[Row]:
    """Every target of performance.md (and issue 8's extra ones), met or not, with ratios."""
    rows = _latency_checks(r) + _throughput_checks(r) + _stream_checks(r)
    return rows + _resource_checks(r)


def _latency_checks(r: dict[str, Any]) -> list[Row]:
    nexus, lite = _get(r, "latency_c1", "nexus") or {}, _get(r, "latency_c1", "litellm") or {}
    rows = []
    for p, limit in (("p50", 1.0), ("p99", 3.0)):
        value = nexus.get(f"added_{p}_ms")
        rows.append(_check(f"added latency {p}, JSON c1 (ms)", f"<= {limit}", value,
                           _le(value, limit), litellm=lite.get(f"added_{p}_ms"),
                           ratio=_ratio(value, lite.get(f"added_{p}_ms"))))  # fmt: skip
    return rows


def _throughput_checks(r: dict[str, Any]) -> list[Row]:
    c32 = _get(r, "throughput", "c32") or {}
    nexus, lite, direct = (c32.get(n, {}).get("rps") for n in ("nexus", "litellm", "direct"))
    vs_lite = _ratio(nexus, lite)
    floor = 10 * lite if isinstance(lite, int | float) else 1200
    rows = [
        _check("throughput c32 (req/s) vs LiteLLM", f">= 10x LiteLLM = {floor:,.0f}", nexus,
               None if nexus is None else nexus >= floor, litellm=lite, ratio=vs_lite,
               note="reference machine: >= 1,200"),
        _check("throughput c32 vs direct (issue 8)", ">= 0.60 of direct", _ratio(nexus, direct),
               None if direct is None or nexus is None else nexus >= 0.6 * direct, direct=direct),
        _check("throughput c32 vs LiteLLM (issue 8)", ">= 3x LiteLLM", vs_lite,
               None if vs_lite is None else vs_lite >= 3),
    ]  # fmt: skip
    return rows


def _stream_checks(r: dict[str, Any]) -> list[Row]:
    nexus = _get(r, "streaming", "c1", "nexus", "ttfb") or {}
    lite = _get(r, "streaming", "c1", "litellm", "ttfb") or {}
    value = nexus.get("added_p50_ms")
    held = _get(r, "streams_held", "nexus", "max_ok")
    return [
        _check("stream added TTFB p50, c1 (ms)", "<= 1.0", value, _le(value, 1.0),
               litellm=lite.get("added_p50_ms"), ratio=_ratio(value, lite.get("added_p50_ms"))),
        _check("concurrent streams held", ">= 500", held,
               None if held is None else held >= 500,
               litellm=_get(r, "streams_held", "litellm", "max_ok")),
        _check("translated providers vs acompletion", "<= acompletion + 0.5 ms", None, None,
               note="not measured by this bench"),
    ]  # fmt: skip


def _resource_checks(r: dict[str, Any]) -> list[Row]:
    planner = _get(r, "planner", "results") or {}
    worst = max((row["p50_us"] for row in planner.values()), default=None)
    local, translated = _get(r, "startup", "local") or {}, _get(r, "startup", "translated") or {}
    peak = _get(r, "memory", "nexus", "peak_rss_mb")
    growth = _get(r, "memory_growth", "growth_pct")
    lite_start = _get(r, "memory", "litellm", "ready_after_s")
    return [
        _check("planner p50, 100 backends / 1,000 models (us)", "<= 50", worst, _le(worst, 50)),
        _check("start-up to /health, local only (s)", "<= 1.5", local.get("health_s"),
               _le(local.get("health_s"), 1.5), litellm=lite_start,
               ratio=_ratio(local.get("health_s"), lite_start)),
        _check("start-up to /health, translated configured (s)", "<= 5",
               translated.get("health_s"), _le(translated.get("health_s"), 5)),
        _check("peak RSS under load, local only (MB)", "<= 100", peak, _le(peak, 100),
               litellm=_get(r, "memory", "litellm", "peak_rss_mb"),
               ratio=_ratio(peak, _get(r, "memory", "litellm", "peak_rss_mb"))),
        _check("RSS at ready, translated configured (MB)", "<= 350", translated.get("rss_mb"),
               _le(translated.get("rss_mb"), 350), note="translated path not exercised"),
        _check("RSS growth, after 1k -> after 100k requests (%)", "<= 10", growth,
               _le(growth, 10), note=f"{_get(r, 'memory_growth', 'requests_first')} -> "
               f"{_get(r, 'memory_growth', 'requests_total')} requests"),
    ]  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def targets_table(rows: list[Row]) -> Table:
    table = Table(title="Targets (performance.md) - Nexus in one run")
    for column in ("measure", "target", "Nexus", "LiteLLM", "Nexus/LiteLLM", "status", "note"):
        table.add_column(column)
    for row in rows:
        style = {"met": "green", "NOT met": "red"}.get(row["status"], "dim")
        table.add_row(row["measure"], row["target"], _fmt(row["nexus"]), _fmt(row.get("litellm")),
                      _fmt(row.get("ratio")), f"[{style}]{row['status']}[/{style}]",
                      _fmt(row.get("note")))  # fmt: skip
    return table


def measures_table(r: dict[str, Any]) -> Table:
    """Every raw number per target: latency, throughput, streaming, CPU and memory."""
    names = r["meta"]["targets"]
    table = Table(title="Measures per target (ms unless stated; added = target - direct)")
    table.add_column("measure")
    for name in names:
        table.add_column(name, justify="right")
    for label, path in MEASURES:
        table.add_row(label, *(_fmt(_get(r, *_at(path, name))) for name in names))
    return table


def _at(path: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(name if part == "*" else part for part in path)


MEASURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON c1 p50", ("latency_c1", "*", "p50_ms")),
    ("JSON c1 p99", ("latency_c1", "*", "p99_ms")),
    ("JSON c1 added p50", ("latency_c1", "*", "added_p50_ms")),
    ("JSON c1 added p99", ("latency_c1", "*", "added_p99_ms")),
    ("JSON c8 req/s", ("throughput", "c8", "*", "rps")),
    ("JSON c8 p99", ("throughput", "c8", "*", "p99_ms")),
    ("JSON c32 req/s", ("throughput", "c32", "*", "rps")),
    ("JSON c32 p99", ("throughput", "c32", "*", "p99_ms")),
    ("JSON c32 vs direct", ("throughput", "c32", "*", "vs_direct")),
    ("stream c1 TTFB p50", ("streaming", "c1", "*", "ttfb", "p50_ms")),
    ("stream c1 TTFB p99", ("streaming", "c1", "*", "ttfb", "p99_ms")),
    ("stream c1 added TTFB p50", ("streaming", "c1", "*", "ttfb", "added_p50_ms")),
    ("stream c1 total p50", ("streaming", "c1", "*", "total", "p50_ms")),
    ("stream c16 TTFB p50", ("streaming", "c16", "*", "ttfb", "p50_ms")),
    ("stream c16 TTFB p99", ("streaming", "c16", "*", "ttfb", "p99_ms")),
    ("stream c16 added TTFB p50", ("streaming", "c16", "*", "ttfb", "added_p50_ms")),
    ("stream c16 total p50", ("streaming", "c16", "*", "total", "p50_ms")),
    ("stream c16 total p99", ("streaming", "c16", "*", "total", "p99_ms")),
    ("streams held (max level OK)", ("streams_held", "*", "max_ok")),
    ("CPU ms/req JSON c1", ("cpu_ms_per_request", "*", "json_c1")),
    ("CPU ms/req JSON c32", ("cpu_ms_per_request", "*", "json_c32")),
    ("CPU ms/req stream c16", ("cpu_ms_per_request", "*", "stream_c16")),
    ("RSS at ready (MB)", ("memory", "*", "ready_rss_mb")),
    ("RSS now (MB)", ("memory", "*", "rss_mb")),
    ("peak RSS (MB)", ("memory", "*", "peak_rss_mb")),
    ("ready after start (s)", ("memory", "*", "ready_after_s")),
)


def print_report(r: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=160)
    up = r["upstream"]
    console.print(
        f"fake upstream ({up['impl']}): ceiling {_fmt(up['ceiling_rps'])} req/s direct at c32 "
        f"({r['meta']['load_tool']}); upstream CPU {_fmt(up.get('cpu_ms_per_request'))} ms/req"
    )
    noise = r["meta"].get("noise", {})
    if noise.get("foreign_cores", 0) > 0.2:
        console.print(
            f"[yellow]busy machine: other processes used {noise['foreign_cores']} cores on average "
            f"during the run (load average {noise['loadavg_1m_start']} -> "
            f"{noise['loadavg_1m_end']}); absolute numbers are low, compare ratios[/yellow]"
        )
    console.print(measures_table(r))
    console.print(targets_table(r["checks"]))
    for name, why in not_measured(r).items():
        console.print(f"[red]{_label(r, name)} not measured:[/red] {why}")
    console.print(gateways_table(r))


def not_measured(r: dict[str, Any]) -> dict[str, str]:
    """Each rival (and ``nexus-auto``) left out of the run, and why (a skip flag, or the install
    or start error)."""
    rivals: dict[str, dict[str, Any]] = r.get("rivals") or {}
    out = {name: str(e.get("why_not")) for name, e in rivals.items() if not e.get("measured")}
    auto = r.get("nexus_auto")
    if isinstance(auto, dict) and not auto.get("measured"):
        out = {"nexus-auto": str(auto.get("why_not")), **out}
    if r.get("litellm_error") and "litellm" not in rivals:  # a report from before bench.rivals
        out["litellm"] = str(r["litellm_error"])
    return out


def _label(r: dict[str, Any], name: str) -> str:
    return FIXED_LABELS.get(name) or str(_get(r, "rivals", name, "label") or name)


def _bytes_cell(r: dict[str, Any], name: str) -> str:
    check = _get(r, "upstream_bytes", name)
    if not isinstance(check, dict):
        return "-"
    return " / ".join("yes" if _get(check, k, "unchanged") else "NO" for k in ("json", "stream"))


#: The side-by-side table: (label, path with "*" for the target); None for the bytes row.
GATEWAY_ROWS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("CPU ms/req JSON c1", ("cpu_ms_per_request", "*", "json_c1")),
    ("CPU ms/req JSON c32", ("cpu_ms_per_request", "*", "json_c32")),
    ("CPU ms/req stream c16", ("cpu_ms_per_request", "*", "stream_c16")),
    ("req/s JSON c8", ("throughput", "c8", "*", "rps")),
    ("req/s JSON c32", ("throughput", "c32", "*", "rps")),
    ("added p50 JSON c1 (ms)", ("latency_c1", "*", "added_p50_ms")),
    ("added p99 JSON c1 (ms)", ("latency_c1", "*", "added_p99_ms")),
    ("added TTFB p50 stream c1 (ms)", ("streaming", "c1", "*", "ttfb", "added_p50_ms")),
    ("slow streams held (max level OK)", ("streams_held", "*", "max_ok")),
    ("RSS at ready (MB)", ("memory", "*", "ready_rss_mb")),
    ("peak RSS (MB)", ("memory", "*", "peak_rss_mb")),
    ("start-up to first answer (s)", ("memory", "*", "ready_after_s")),
    ("upstream bytes unchanged (JSON / stream)", None),
)


def _tree_note(r: dict[str, Any]) -> list[str]:
    """How CPU and RSS cover a gateway of several processes (``nexus-auto``), when measured."""
    auto = r.get("nexus_auto")
    if not isinstance(auto, dict) or not auto.get("measured"):
        return []
    return [
        f"{NEXUS_AUTO_LABEL}: {auto.get('workers')} workers ({auto.get('processes')} processes: "
        "nexus serve, its workers and multiprocessing's resource tracker). CPU and RSS of every "
        "gateway are summed over its process tree: RSS at ready = sum of VmRSS (for workers=auto "
        "once every worker has answered), peak RSS = sum of each process's VmHWM."
    ]


def gateways_table(r: dict[str, Any]) -> Table:
    """One column per target, rivals included when left out (their cells empty, the caption says
    why): the figures that compare gateways at a glance."""
    measured = list(r["meta"]["targets"])
    names = measured + [n for n in r.get("rivals") or {} if n not in measured]
    missing = not_measured(r)
    if "nexus-auto" in missing and "nexus-auto" not in names:
        names.insert(names.index("nexus") + 1 if "nexus" in names else len(names), "nexus-auto")
    lines = [f"{_label(r, n)}: not measured, {why}" for n, why in missing.items()]
    table = Table(
        title="Gateways side by side (added = target - direct; CPU of the gateway process tree)",
        caption="\n".join([*_tree_note(r), *lines]),
    )
    table.add_column("measure")
    for name in names:
        table.add_column(_label(r, name) + (" (-)" if name in missing else ""), justify="right")
    for label, path in GATEWAY_ROWS:
        cells = [
            _bytes_cell(r, name) if path is None else _fmt(_get(r, *_at(path, name)))
            for name in names
        ]
        table.add_row(label, *cells)
    return table
