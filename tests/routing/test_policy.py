"""RoutingPolicy: aliases, fallbacks and glob policies, validated when built."""

from __future__ import annotations

import pytest

from nexus.config.kinds import Zone
from nexus.config.model import NexusConfig, RoutingConfig
from nexus.errors import ConfigError
from nexus.routing import Constraint, RoutingPolicy
from tests.routing.fleet import policy


def test_resolve_follows_up_to_three_hops() -> None:
    rules = policy(aliases={"a": "b", "b": "c", "c": "d", "x": "y"})
    assert rules.resolve("a") == "d"
    assert rules.resolve("b") == "d"
    assert rules.resolve("x") == "y"
    assert rules.resolve("d") == "d"
    assert rules.resolve("unrelated") == "unrelated"
    assert "a" in rules.alias_names() and "d" not in rules.alias_names()


def test_a_fourth_hop_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        policy(aliases={"a": "b", "b": "c", "c": "d", "d": "e"})
    assert "more than 3 hops" in str(caught.value)


@pytest.mark.parametrize("aliases", [{"a": "a"}, {"a": "b", "b": "a"}])
def test_alias_cycles_are_config_errors(aliases) -> None:
    with pytest.raises(ConfigError, match="cycle"):
        policy(aliases=aliases)


def test_aliases_are_case_sensitive() -> None:
    rules = policy(aliases={"Fast": "llama3"})
    assert rules.resolve("fast") == "fast"


def test_invalid_glob_is_a_config_error_never_ignored() -> None:
    with pytest.raises(ConfigError, match=r"routing.policies\[1\].model_pattern"):
        policy(policies=[{"model_pattern": "ok*"}, {"model_pattern": "gpt-[4"}])


def test_first_matching_policy_wins() -> None:
    rules = policy(
        policies=[
            {"model_pattern": "gpt-4*", "privacy": "restricted", "min_tier": 3},
            {"model_pattern": "gpt-*", "min_tier": 2},
            {"model_pattern": "llama?", "privacy": "restricted"},
            {"model_pattern": "[ab]x"},
        ]
    )
    assert rules.constraint_for("gpt-4o") == Constraint(Zone.RESTRICTED, 3)
    assert rules.constraint_for("gpt-3.5") == Constraint(Zone.OPEN, 2)
    assert rules.constraint_for("llama3") == Constraint(Zone.RESTRICTED, None)
    assert rules.constraint_for("llama3:8b") == Constraint()
    assert rules.constraint_for("bx") == Constraint()
    assert rules.constraint_for("GPT-4o") == Constraint()  # case-sensitive on every platform


def test_unrestricted_is_the_reference_spelling_of_open() -> None:
    rules = policy(policies=[{"model_pattern": "*", "privacy": "unrestricted"}])
    assert rules.constraint_for("x").privacy is Zone.OPEN


def test_fallbacks_and_mentions() -> None:
    rules = policy(aliases={"fast": "llama3"}, fallbacks={"gpt-4": ["gpt-4o", "llama3"]})
    assert rules.fallbacks_for("gpt-4") == ("gpt-4o", "llama3")
    assert rules.fallbacks_for("llama3") == ()
    for name in ("fast", "llama3", "gpt-4", "gpt-4o"):
        assert rules.mentions(name)
    assert not rules.mentions("mistral")


def test_from_config_takes_routing_and_health_interval() -> None:
    config = NexusConfig.model_validate(
        {
            "routing": {"strategy": "priority_only", "max_retries": 4},
            "health_check": {"interval_seconds": 12},
        }
    )
    rules = RoutingPolicy.from_config(config)
    assert rules.strategy.value == "priority_only"
    assert rules.max_retries == 4
    assert rules.health_interval_seconds == 12


def test_weights_are_plain_numbers() -> None:
    rules = RoutingPolicy(
        RoutingConfig.model_validate({"weights": {"priority": 10, "load": 0, "latency": 90}})
    )
    assert (rules.weights.priority, rules.weights.load, rules.weights.latency) == (10.0, 0.0, 90.0)


def test_a_glob_alias_maps_every_matching_name() -> None:
    rules = policy(aliases={"claude-*": "qwen3-coder:30b"})
    assert rules.resolve("claude-sonnet-4-5-20250929") == "qwen3-coder:30b"
    assert rules.resolve("claude-3-5-haiku-latest") == "qwen3-coder:30b"
    assert rules.resolve("gpt-4o") == "gpt-4o"
    assert rules.resolve("claude-*") == "qwen3-coder:30b"


def test_an_exact_alias_wins_over_a_glob_and_globs_match_in_config_order() -> None:
    rules = policy(
        aliases={
            "claude-*-haiku-*": "small",
            "claude-*": "big",
            "claude-opus-4-1": "huge",
        }
    )
    assert rules.resolve("claude-opus-4-1") == "huge"
    assert rules.resolve("claude-3-5-haiku-latest") == "small"
    assert rules.resolve("claude-sonnet-4-5") == "big"


def test_a_glob_alias_target_follows_exact_aliases_but_not_globs_again() -> None:
    rules = policy(aliases={"claude-*": "coder", "coder": "qwen3-coder:30b", "q*": "never"})
    assert rules.resolve("claude-x") == "qwen3-coder:30b"
    assert rules.resolve("qwen3-coder:30b") == "never"  # a requested name matches globs, once


def test_glob_aliases_are_not_model_names() -> None:
    rules = policy(aliases={"claude-*": "qwen", "fast": "qwen"})
    assert rules.alias_names() == ("fast",)


def test_an_unclosed_bracket_in_a_glob_alias_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"routing\.aliases.*never closed"):
        policy(aliases={"claude-[": "qwen"})
