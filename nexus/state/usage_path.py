"""Where the usage ledger lives, decided from the configuration alone (the server checks the file
before it listens, without loading the gateway)."""

from __future__ import annotations

from pathlib import Path

from nexus.config import NexusConfig

#: The usage ledger's file when a budget is set and no [state] usage_path is.
DEFAULT_USAGE_PATH = "nexus-usage.db"


def budgets_configured(config: NexusConfig) -> bool:
    """Whether ``config`` sets any budget (the gateway's or a client's)."""
    clients = config.clients
    spent = any(c.daily_usd is not None or c.monthly_usd is not None for c in clients)
    return spent or config.routing.budget.monthly_limit_usd is not None


def usage_file(config: NexusConfig) -> Path | None:
    """The usage ledger's SQLite file: ``[state] usage_path``, or nexus-usage.db when a budget
    is set; None with Redis or without either (memory)."""
    state = config.state
    if state.backend == "redis":
        return None
    path = state.usage_path or (DEFAULT_USAGE_PATH if budgets_configured(config) else None)
    return None if path is None else Path(path)
