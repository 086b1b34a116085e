"""The dashboard page, rendered on the server from the same data the live updates carry.

Every value from a backend, a client or the configuration (names, models, errors) is HTML-escaped;
``dashboard.js`` builds the same markup with ``textContent`` only. The markup and the formatting
of numbers here and in ``static/dashboard.js`` must stay alike.

A backend's optional ``quality`` (model -> ``status``, ``back_in_seconds``, ``reason``, the shape
of ``/v1/backends``'s) lists the models quality has ejected or is letting back in on its card:
"m ejected, back in 25 s: 2 failures in a row (last: server_error)"; ``dashboard.js`` counts the
seconds down and says "recovering" once they have run out. Models whose status is ``ok`` are not
shown.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from html import escape
from importlib.resources import files
from string import Template
from typing import Any

DASH = "\u2013"
EJECTED, RECOVERING = "ejected", "recovering"


@functools.cache
def _template() -> Template:
    return Template(files("nexus.dashboard").joinpath("index.html").read_text(encoding="utf-8"))


@functools.cache
def asset(name: str) -> bytes:
    """A file of ``static/`` (``dashboard.js``, ``dashboard.css``)."""
    return files("nexus.dashboard").joinpath("static", name).read_bytes()


def render_page(data: Mapping[str, Any]) -> str:
    """The whole page for ``data`` (see :func:`nexus.api.dashboard.dashboard_data`)."""
    return _template().substitute(
        version=_e(data["version"]),
        summary=_e(summary_text(data)),
        backends="".join(backend_card(b) for b in data["backends"])
        or '<li class="empty">No backends configured or discovered.</li>',
        requests="".join(request_row(r) for r in data["requests"])
        or '<tr class="empty"><td colspan="8">No requests yet.</td></tr>',
    )


def summary_text(data: Mapping[str, Any]) -> str:
    totals, backends, queue = data["totals"], data["backends"], data["queue"]
    healthy = sum(1 for b in backends if b["status"] == "healthy")
    waiting = f"; {queue['waiting']} waiting in the queue" if queue["enabled"] else ""
    return (
        f"{totals['requests']} requests, {totals['success']} ok, {totals['errors']} errors; "
        f"{healthy} of {len(backends)} backends healthy{waiting}"
    )


def backend_card(backend: Mapping[str, Any]) -> str:
    status = str(backend["status"])
    facts = [
        ("Zone", backend["zone"]),
        ("Tier", backend["tier"]),
        ("Type", f"{backend['type']} ({backend['location']})"),
        ("In flight", _in_flight(backend)),
        ("Latency", latency_text(backend["latency_ms"])),
    ]
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    models = _models(backend["models"])
    error = backend.get("last_error")
    error_html = f'<p class="error">{_e(error)}</p>' if error and status != "healthy" else ""
    quality = _quality(backend.get("quality") or {})
    return (
        f'<li class="backend status-{_e(status)}" data-backend="{_e(backend["name"])}">'
        f'<div class="head"><span class="name">{_e(backend["name"])}</span>'
        f'<span class="badge">{_e(status)}</span></div>'
        f"<dl>{items}</dl>{models}{quality}{error_html}</li>"
    )


def quality_text(model: str, entry: Mapping[str, Any]) -> str:
    """``m ejected, back in 25 s: <reason>`` or ``m recovering: <reason>``."""
    if entry["status"] == EJECTED:
        back = entry.get("back_in_seconds")
        text = f"{model} ejected" + ("" if back is None else f", back in {back} s")
    else:
        text = f"{model} recovering"
    reason = entry.get("reason")
    return f"{text}: {reason}" if reason else text


def request_row(entry: Mapping[str, Any]) -> str:
    status = int(entry["status"])
    cells = [
        ("Time", time_text(entry["time"]), ""),
        ("Model", entry["model"], "model"),
        ("API", entry.get("endpoint") or DASH, ""),
        ("Client", entry.get("tenant") or DASH, ""),
        ("Backend", entry["backend"] or "none", ""),
        ("Status", status_text(entry), f"status-{status // 100}xx"),
        ("Duration", duration_text(entry["duration_ms"]), ""),
        ("Route reason", entry["route_reason"] or DASH, ""),
    ]
    tds = "".join(
        f'<td data-label="{_e(label)}"{_class(cls)}>{_e(value)}</td>' for label, value, cls in cells
    )
    return f'<tr data-request-id="{_e(entry["request_id"])}">{tds}</tr>'


def time_text(iso: str) -> str:
    """``2026-01-02T03:04:05.678+00:00`` -> ``03:04:05``."""
    return iso[11:19]


def latency_text(latency_ms: float | None) -> str:
    return DASH if latency_ms is None else f"{latency_ms:.1f} ms"


def duration_text(duration_ms: float) -> str:
    return f"{duration_ms:.0f} ms" if duration_ms < 1000 else f"{duration_ms / 1000:.2f} s"


def status_text(entry: Mapping[str, Any]) -> str:
    text = str(entry["status"])
    if entry.get("stream"):
        text += " stream" + (" broken" if entry.get("stream_broken") else "")
    return text


def _in_flight(backend: Mapping[str, Any]) -> str:
    limit = backend.get("max_concurrent")
    return f"{backend['in_flight']}" + ("" if limit is None else f" / {limit}")


def _models(models: Sequence[str]) -> str:
    if not models:
        return '<p class="models none">No models</p>'
    items = "".join(f"<li>{_e(m)}</li>" for m in models)
    return f'<ul class="models">{items}</ul>'


def _quality(quality: Mapping[str, Mapping[str, Any]]) -> str:
    """The models ejected or recovering, by name; nothing when every model is ok."""
    items = "".join(
        f'<li class="quality-{_e(entry["status"])}" data-model="{_e(model)}">'
        f"{_e(quality_text(model, entry))}</li>"
        for model, entry in sorted(quality.items())
        if entry["status"] in (EJECTED, RECOVERING)
    )
    return f'<ul class="quality">{items}</ul>' if items else ""


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


def _e(value: object) -> str:
    return escape(str(value), quote=True)
