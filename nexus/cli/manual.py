"""The man-page sections of ``nexus --help`` and of each command's help: examples, exit status and
the environment, shown after the options (typer's ``epilog``)."""

from __future__ import annotations

from collections.abc import Sequence

_REMOTE_STATUS = (
    "0  the gateway answered",
    "1  it could not be reached, refused the key (401/403) or failed (one line on stderr)",
)

#: Command -> (examples, exit statuses).
_PAGES: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "serve": (
        (
            "nexus serve                           # ./nexus.toml, or defaults without it",
            "nexus serve -c /etc/nexus/nexus.toml --port 9000",
            "NEXUS_LOG_LEVEL=debug nexus serve --no-discovery",
        ),
        (
            "0  stopped by SIGINT or SIGTERM after draining the requests in flight",
            "2  the configuration is invalid or unusable (one line per problem on stderr)",
        ),
    ),
    "models": (("nexus models", "nexus models --url http://gpu-box:8000 --json"), _REMOTE_STATUS),
    "health": (("nexus health", "nexus health --json | jq .backends"), _REMOTE_STATUS),
    "route": (
        ("nexus route llama3.2:3b", "nexus route gpt-4o --explain", "nexus route fast --json"),
        _REMOTE_STATUS,
    ),
    "usage": (("nexus usage", "NEXUS_API_KEY=sk-admin nexus usage --json"), _REMOTE_STATUS),
    "config init": (
        ("nexus config init", "nexus config init -o /etc/nexus/nexus.toml --force"),
        ("0  written", "1  the file exists (use --force) or cannot be written"),
    ),
    "config check": (
        ("nexus config check", "nexus config check -c staging.toml > effective.json"),
        ("0  valid (warnings, if any, on stderr)", "2  invalid: one line per problem on stderr"),
    ),
    "backends list": (
        ("nexus backends list", "nexus backends list --url http://gpu-box:8000 --json"),
        _REMOTE_STATUS,
    ),
}


def _section(title: str, lines: Sequence[str]) -> list[str]:
    """A bold title, then each line with its brackets shown as typed (not rich markup)."""
    return [f"[b]{title}[/b]", *(line.replace("[", "\\[") for line in lines)]


#: The top-level page: what every command reads from the environment.
MAIN = "\n\n".join(
    _section(
        "Environment",
        [
            "NEXUS_CONFIG  the config file (default ./nexus.toml)",
            "NEXUS_HOST, NEXUS_PORT, NEXUS_WORKERS, NEXUS_LOG_LEVEL, NEXUS_LOG_FORMAT, "
            "NEXUS_DISCOVERY, NEXUS_HEALTH_CHECK, NEXUS_REDIS_URL  override the file "
            "(below the command-line flags)",
            "NEXUS_URL  the gateway the other commands ask (default http://127.0.0.1:8000)",
            "NEXUS_API_KEY  the client key they send when the gateway has [[clients]]",
            "Run nexus COMMAND --help for a command's options, examples and exit status. "
            "Shell completion: nexus --install-completion.",
        ],
    )
)


def page(command: str) -> str:
    """The epilog of ``command`` (``"config check"``): its examples and exit statuses."""
    examples, statuses = _PAGES[command]
    return "\n\n".join([*_section("Examples", examples), *_section("Exit status", statuses)])
