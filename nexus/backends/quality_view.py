"""What the planner reads of the quality store: an immutable :class:`QualitySnapshot` of
:class:`QualityView` values, and the penalty formula. Pure; see :mod:`nexus.backends.quality`
for what the figures mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar, overload

from nexus.config.quality import QualityConfig

_T = TypeVar("_T")


class PairStatus(StrEnum):
    OK = "ok"
    EJECTED = "ejected"
    RECOVERING = "recovering"


def penalties(
    ttft_ms: float | None, rate: float | None, settings: QualityConfig
) -> tuple[float, float]:
    """(TTFT penalty, error-rate penalty), each 0..1, for a window's mean TTFT and error rate
    (None: no data, or too few attempts). See the module docstring."""
    ttft_penalty = error_penalty = 0.0
    threshold = settings.ttft_penalty_threshold_ms
    if ttft_ms is not None and ttft_ms > threshold:
        ttft_penalty = min((ttft_ms - threshold) / threshold, 1.0)
    if rate is not None:
        error_penalty = rate
    return ttft_penalty, error_penalty


def seconds_left(until: float | None, now: float) -> int | None:
    """Whole seconds until an ejection ending at ``until`` (monotonic) is over; None when it is
    not running."""
    return None if until is None or until <= now else math.ceil(until - now)


@dataclass(frozen=True, slots=True)
class QualityView:
    """One pair as the planner sees it, over the routing window (``window_seconds``); the
    ``error_penalty`` counts only the attempts since its last ejection, ``error_rate`` all of
    them. ``recovering`` means on probation: once ``ejected_until`` (monotonic seconds) has passed,
    only a probe share is let through."""

    error_rate: float | None
    ttft_ms: float | None
    ttft_penalty: float = 0.0
    error_penalty: float = 0.0
    ejected_until: float | None = None
    recovering: bool = False
    reason: str | None = None

    @property
    def penalty(self) -> float:
        """Both penalties fully weighted (``[routing.weights]`` may weigh them less)."""
        return self.weighted_penalty(1.0, 1.0)

    def weighted_penalty(self, ttft_weight: float, error_weight: float) -> float:
        """The share of the smart score to take off with each penalty scaled by its weight
        (0..1)."""
        keep = (1.0 - ttft_weight * self.ttft_penalty) * (1.0 - error_weight * self.error_penalty)
        return 1.0 - keep

    def status(self, now: float) -> PairStatus:
        if self.ejected_until is not None and now < self.ejected_until:
            return PairStatus.EJECTED
        return PairStatus.RECOVERING if self.recovering else PairStatus.OK

    def allows(self, now: float, draw: float, probe_share: float) -> bool:
        """Whether to send the pair a request at ``now``: never while ejected; while recovering
        only when ``draw`` (uniform in [0, 1), from the caller) is below ``probe_share``."""
        if self.ejected_until is not None and now < self.ejected_until:
            return False
        return draw < probe_share if self.recovering else True


class QualitySnapshot(Mapping[tuple[str, str], QualityView]):
    """An immutable mapping (backend, model) -> :class:`QualityView`: a shared ``base`` plus the
    pairs changed since (``top``; None for a pair removed), so that a new snapshot after a record
    costs the changes, not a copy of every pair. Neither dictionary is ever modified."""

    __slots__ = ("_base", "_len", "_top")

    def __init__(
        self,
        base: dict[tuple[str, str], QualityView],
        top: dict[tuple[str, str], QualityView | None],
    ) -> None:
        self._base, self._top = base, top
        added = sum(1 for key, view in top.items() if view is not None and key not in base)
        removed = sum(1 for key, view in top.items() if view is None and key in base)
        self._len = len(base) + added - removed

    def __getitem__(self, key: tuple[str, str]) -> QualityView:
        if key in self._top:
            view = self._top[key]
            if view is None:
                raise KeyError(key)
            return view
        return self._base[key]

    @overload
    def get(self, key: tuple[str, str], /) -> QualityView | None: ...
    @overload
    def get(self, key: tuple[str, str], default: QualityView | _T, /) -> QualityView | _T: ...

    def get(self, key: tuple[str, str], default: object = None, /) -> object:
        """The planner's lookup, without an exception on a miss."""
        top = self._top
        if key in top:
            view = top[key]
            return default if view is None else view
        return self._base.get(key, default)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from (key for key in self._base if key not in self._top)
        yield from (key for key, view in self._top.items() if view is not None)

    def __len__(self) -> int:
        return self._len
