"""Client keys as tenants (``[[clients]]``): who sent a request, which models it may ask for and
whether its requests must stay on restricted backends. The keys of ``[server] api_keys_env`` are
the tenant :data:`DEFAULT`, without limits. A tenant is known by its name; its key is never kept
here nor shown anywhere."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from nexus.config.kinds import Priority, Zone
from nexus.config.model import ClientConfig
from nexus.errors import InvalidRequest
from nexus.gateway.ratelimit import Limits

PRIORITY_HEADER = "x-nexus-priority"


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    patterns: tuple[re.Pattern[str], ...] | None = None  # None: every model
    restricted: bool = False
    globs: tuple[str, ...] = ()  # as configured, for messages
    priority: Priority = Priority.NORMAL  # without X-Nexus-Priority
    max_priority: Priority = Priority.HIGH  # the highest X-Nexus-Priority may ask for
    limits: Limits = Limits()  # rpm and tpm

    @classmethod
    def from_config(cls, client: ClientConfig) -> Tenant:
        globs = client.models
        patterns = None if globs is None else tuple(re.compile(fnmatch.translate(g)) for g in globs)
        restricted = client.privacy is Zone.RESTRICTED
        limits = Limits(client.rpm, client.tpm)
        return cls(
            client.name,
            patterns,
            restricted,
            globs or (),
            client.priority,
            client.max_priority,
            limits,
        )

    @property
    def limited(self) -> bool:
        return self.limits.rpm is not None or self.limits.tpm is not None

    def priority_of(self, header: str | None) -> Priority:
        """The queue priority of a request sending ``header`` as X-Nexus-Priority: the header
        (case and spaces ignored) or the tenant's default, never above its maximum. Raises
        :class:`InvalidRequest` for another value."""
        asked = self.priority
        if header is not None:
            try:
                asked = Priority(header.strip().lower())
            except ValueError:
                choices = ", ".join(p.value for p in Priority)
                message = f"X-Nexus-Priority must be one of {choices} (got {header.strip()!r})"
                raise InvalidRequest(message) from None
        return asked if asked.rank >= self.max_priority.rank else self.max_priority

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
