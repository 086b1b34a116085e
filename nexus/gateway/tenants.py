"""Client keys as tenants (``[[clients]]``): who sent a request, which models it may ask for and
whether its requests must stay on restricted backends. The keys of ``[server] api_keys_env`` are
the tenant :data:`DEFAULT`, without limits. A tenant is known by its name; its key is never kept
here nor shown anywhere."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from nexus.config.kinds import Zone
from nexus.config.model import ClientConfig


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    patterns: tuple[re.Pattern[str], ...] | None = None  # None: every model
    restricted: bool = False
    globs: tuple[str, ...] = ()  # as configured, for messages

    @classmethod
    def from_config(cls, client: ClientConfig) -> Tenant:
        globs = client.models
        patterns = None if globs is None else tuple(re.compile(fnmatch.translate(g)) for g in globs)
        restricted = client.privacy is Zone.RESTRICTED
        return cls(client.name, patterns, restricted, globs or ())

    def allows(self, requested: str, model: str) -> bool:
        """Whether the tenant may ask for ``requested`` (resolved to ``model`` by the aliases):
        either name matching one of its globs is enough (aliases are the operator's)."""
        if self.patterns is None:
            return True
        return any(p.match(requested) or p.match(model) for p in self.patterns)

    def refusal(self, requested: str) -> str:
        allowed = ", ".join(self.globs)
        return f"client '{self.name}' may not use model {requested!r} (it may use: {allowed})"


DEFAULT = Tenant("default")
