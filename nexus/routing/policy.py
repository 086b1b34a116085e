"""The administrator's routing rules, prepared once for fast lookups: aliases, fallback chains,
traffic policies (privacy and minimum tier by model glob), strategy and weights.

Alias rule: **an alias always wins.** When ``[routing.aliases]`` has an entry for the requested
name, the request goes to the alias's target, even if some backend also serves a model with exactly
that name; a name is used as a real model directly only when no alias exists for it. Aliases chain
up to 3 hops (``a -> b -> c -> d``); cycles and longer chains are configuration errors. Alias names
are case-sensitive. A name with ``*``, ``?`` or ``[`` is a glob alias (``"claude-*" = "qwen3"``,
for clients such as Claude Code that send several model ids): an exact alias wins over globs, the
first matching glob in configuration order wins over later ones, and a glob's target then follows
exact aliases only.

Fallback chains are keyed by the resolved model and used verbatim, in order (entries are not
alias-resolved and not followed recursively). Policies match the resolved model with glob syntax
(``*``, ``?``, ``[...]``, case-sensitive); the first matching policy wins; an invalid glob is a
configuration error, never silently ignored.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

from nexus.config.checks import MAX_ALIAS_HOPS, alias_problems, glob_problem, is_glob
from nexus.config.kinds import Zone
from nexus.config.model import NexusConfig, PolicyConfig, RoutingConfig, Strategy
from nexus.errors import ConfigError

_POLICY_MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Weights:
    """Smart-strategy weights as plain numbers (read on every decision)."""

    priority: float = 50.0
    load: float = 30.0
    latency: float = 20.0
    ttft: float = 1.0  # share of the quality TTFT penalty applied (the config's percent / 100)
    error_rate: float = 1.0  # share of the quality error-rate penalty applied


@dataclass(frozen=True, slots=True)
class Constraint:
    """What one traffic policy imposes on a model: the privacy zone required and a minimum tier.

    ``privacy`` is :attr:`Zone.RESTRICTED` when only restricted backends may serve, and
    :attr:`Zone.OPEN` when any zone may.
    """

    privacy: Zone = Zone.OPEN
    min_tier: int | None = None


NO_CONSTRAINT = Constraint()


class RoutingPolicy:
    """Immutable routing rules built from ``[routing]`` (validated again here, so a hand-built
    :class:`RoutingConfig` with a cycle or a bad glob raises :class:`ConfigError`).

    ``health_interval_seconds`` is the ``Retry-After`` of a 503 whose recovery time is unknown.
    """

    __slots__ = (
        "_aliases",
        "_glob_aliases",
        "_resolve_memo",
        "_fallbacks",
        "_patterns",
        "_mentioned",
        "_constraint_memo",
        "strategy",
        "max_retries",
        "weights",
        "health_interval_seconds",
        "probe_share",
    )

    def __init__(
        self,
        config: RoutingConfig,
        *,
        health_interval_seconds: float = 30.0,
        probe_share: float = 0.1,
    ) -> None:
        problems = list(alias_problems(config.aliases))
        for index, rule in enumerate(config.policies):
            problem = glob_problem(rule.model_pattern)
            if problem:
                problems.append(
                    f"routing.policies[{index}].model_pattern: {rule.model_pattern!r} "
                    f"is not a valid glob ({problem})"
                )
        if problems:
            raise ConfigError(problems)
        self.strategy: Strategy = config.strategy
        self.max_retries: int = config.max_retries
        w = config.weights
        self.weights = Weights(
            float(w.priority), float(w.load), float(w.latency), w.ttft / 100, w.error_rate / 100
        )
        self.health_interval_seconds = health_interval_seconds
        self.probe_share = probe_share  # of a recovering (backend, model): [quality]
        exact = {name: target for name, target in config.aliases.items() if not is_glob(name)}
        self._aliases = {name: _chain(name, exact) for name in exact}
        self._glob_aliases = tuple(
            (re.compile(fnmatch.translate(name)), target)
            for name, target in config.aliases.items()
            if is_glob(name)
        )
        self._fallbacks = {model: tuple(chain) for model, chain in config.fallbacks.items()}
        self._mentioned = frozenset(
            [*config.aliases, *config.aliases.values(), *config.fallbacks]
            + [model for chain in config.fallbacks.values() for model in chain]
        )
        self._patterns = tuple(
            (re.compile(fnmatch.translate(rule.model_pattern)), _constraint(rule))
            for rule in config.policies
        )
        self._constraint_memo = functools.lru_cache(maxsize=_POLICY_MEMO_SIZE)(self._match)
        self._resolve_memo = functools.lru_cache(maxsize=_POLICY_MEMO_SIZE)(self._resolve_glob)

    @classmethod
    def from_config(cls, config: NexusConfig) -> RoutingPolicy:
        """The policy of a whole configuration (routing rules, the health-check interval and the
        quality probe share)."""
        return cls(
            config.routing,
            health_interval_seconds=config.health_check.interval_seconds,
            probe_share=config.quality.probe_share,
        )

    def resolve(self, name: str) -> str:
        """The model ``name`` stands for: the end of its alias chain, or ``name`` itself."""
        chain = self._aliases.get(name)
        if chain is not None:
            return chain[-1]
        return self._resolve_memo(name) if self._glob_aliases else name

    def _resolve_glob(self, name: str) -> str:
        for pattern, target in self._glob_aliases:
            if pattern.match(name):
                chain = self._aliases.get(target)
                return target if chain is None else chain[-1]
        return name

    def fallbacks_for(self, model: str) -> tuple[str, ...]:
        """The fallback models of ``model`` (resolved name), in the order they are tried."""
        return self._fallbacks.get(model, ())

    def mentions(self, name: str) -> bool:
        """Whether ``name`` appears in the aliases or fallbacks (such a model is known: a 503,
        not a 404, when no backend serves it now)."""
        return name in self._mentioned

    def alias_names(self) -> tuple[str, ...]:
        return tuple(self._aliases)

    def constraint_for(self, model: str) -> Constraint:
        """What the first policy whose glob matches ``model`` imposes; no match, no constraint."""
        return self._constraint_memo(model)

    def _match(self, model: str) -> Constraint:
        for pattern, constraint in self._patterns:
            if pattern.match(model):
                return constraint
        return NO_CONSTRAINT


def _constraint(rule: PolicyConfig) -> Constraint:
    return Constraint(privacy=rule.privacy, min_tier=rule.min_tier)


def _chain(name: str, aliases: dict[str, str]) -> tuple[str, ...]:
    chain = [name]
    while chain[-1] in aliases and len(chain) <= MAX_ALIAS_HOPS:
        chain.append(aliases[chain[-1]])
    return tuple(chain)
