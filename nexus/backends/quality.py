"""The quality store: per (backend, model) rolling figures of real requests, outlier ejection
with a growing time and a gradual release, and the smart-score penalty. Pure and clock-injected:
no I/O, no asyncio, no threads (the caller owns it from one event loop).

Fed by every completed attempt, never by probes. A 4xx the client caused is never a backend
failure: the caller does not call :meth:`QualityStore.record_failure` for it (nor for
``BackendAtCapacity``, where nothing was sent). Windows: :mod:`nexus.backends.quality_windows`.

**Ejection.** A pair (backend, model) is ejected when, outside an ejection,

- ``consecutive_failures`` errors come in a row (a success resets the count), or
- its error rate over the routing window (the newest ``window_seconds``, 5 minutes by default)
  is at least ``error_rate_threshold`` over at least ``min_requests`` attempts, counting only the
  attempts made after its previous ejection (a pair back from an ejection is judged on its new
  requests, not on the failures that already ejected it).

A 429 is not an error (the cooldown deals with it): it neither counts in a row nor in the rate.
The ejection lasts ``min(base_ejection_seconds * 2 ** (n - 1), max_ejection_seconds)`` where
``n`` counts this ejection and the pair's others that started within the last hour. Failures of
attempts still in flight when it was ejected do not extend it, and successes during it do not
shorten it. When it ends the pair is *recovering*: :meth:`QualityView.allows` lets
``probe_share`` of its would-be traffic through; ``recovery_successes`` successes in a row make it
ok again; an error while recovering ejects it again (``n + 1``).

``allows`` is advisory: the planner may override it (it never ejects the last candidate of a
privacy zone or tier, since a 503 helps no one more than a slow answer); that rule lives there.

**Penalty** (a fraction of the smart score to take off, ``score * (1 - penalty)``), from the
routing window's figures: ``p_ttft = min((ttft - thr) / thr, 1)`` when the mean TTFT exceeds
``thr = ttft_penalty_threshold_ms`` (the Rust rule), else 0; ``p_err = rate`` when the error
rate counts (``min_requests`` attempts, made since the pair's last ejection), else 0: the score
times the share of attempts that succeed. ``penalty = 1 - (1 - w_t * p_ttft) * (1 -
w_e * p_err)`` with the ``[routing.weights]`` ``ttft`` and ``error_rate`` (percent, 100 by
default). A pair without data has penalty 0. A penalised pair that gets no traffic any more
loses its penalty once its figures leave the window.

**Snapshots.** :meth:`QualityStore.view` (the planner's, on every request) recomputes only the
pairs recorded since the last one; :meth:`QualityStore.refresh` (a background tick every
``metrics_interval_seconds``) also recomputes the pairs whose old buckets left the window.

**Replicas** (``[state] backend = "redis"``, :mod:`nexus.state.quality_redis`): each replica
keeps its own windows and, every ``metrics_interval_seconds``, publishes :meth:`QualityStore.shared`
(its routing-window sums and the ejections it started) and takes the others' sums with
:meth:`QualityStore.merge`: penalties and the error rate shown read local plus remote sums; an
ejection another replica started is adopted until its end (then this replica probes on its own).
Ejection decisions read local attempts only, so a replica never ejects on figures it cannot judge
since the ejection.

**Memory.** At most ``max_pairs`` pairs; recording for a new pair beyond that forgets the pair
least recently recorded (even an ejected one: it comes back with a clean slate).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from math import isqrt

from nexus.backends.quality_view import (
    PairStatus,
    QualitySnapshot,
    QualityView,
    penalties,
)
from nexus.backends.quality_windows import (
    NEVER,
    WINDOWS,
    Figures,
    PairWindows,
    Window,
    error_rate,
    mean,
)
from nexus.config.quality import BUCKET_SECONDS, QualityConfig
from nexus.errors import Failure

#: Ejections that started longer ago than this do not make the next one longer.
EJECTION_MEMORY_SECONDS = 3600.0
#: Ejection start times kept per pair (enough to reach any cap: the time doubles each one).
_EJECTIONS_KEPT = 64


@dataclass(frozen=True, slots=True)
class PairState:
    """Where a pair stands at one instant. ``ejected_until`` (monotonic seconds) and ``reason``
    stay set while it recovers; ``ejections`` counts those that started within the last hour;
    ``successes`` counts successes in a row while recovering."""

    status: PairStatus = PairStatus.OK
    ejected_until: float | None = None
    ejections: int = 0
    reason: str | None = None
    successes: int = 0


def _span(seconds: int) -> str:
    """``5 min`` or ``30 s``."""
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _end(
    ttft_s: float | None, total_s: float | None, output_tokens: int | None
) -> tuple[float | None, int, float]:
    """(total milliseconds, tokens, seconds after the first token) of one success."""
    if total_s is None:
        return None, 0, 0.0
    total_s = max(total_s, 0.0)
    seconds = total_s - (ttft_s or 0.0)
    tokens = output_tokens if output_tokens and seconds > 0 else 0
    return total_s * 1000.0, tokens, seconds if tokens else 0.0


@dataclass(frozen=True, slots=True)
class Shared:
    """One pair's routing-window sums as replicas exchange them: attempts (all, and those since
    the replica's last ejection of the pair), TTFT sums, and an ejection the replica started
    (wall-clock end) with its reason."""

    successes: float = 0.0
    errors: float = 0.0
    judged_successes: float = 0.0
    judged_errors: float = 0.0
    ttft_sum: float = 0.0
    ttft_count: float = 0.0
    ejected_until: float | None = None
    reason: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.successes or self.errors or self.ttft_count)

    def plus(self, other: Shared) -> Shared:
        """The figures of both (the later ejection, with its reason)."""
        later = other if (other.ejected_until or 0.0) > (self.ejected_until or 0.0) else self
        return Shared(
            self.successes + other.successes,
            self.errors + other.errors,
            self.judged_successes + other.judged_successes,
            self.judged_errors + other.judged_errors,
            self.ttft_sum + other.ttft_sum,
            self.ttft_count + other.ttft_count,
            later.ejected_until,
            later.reason,
        )


class _Pair:
    """The mutable record of one pair. ``judge_after``: the 10-second bucket after which
    attempts count for error-rate ejection."""

    __slots__ = (
        "ejected_until",
        "ejections",
        "judge_after",
        "proven",
        "adopted",
        "reason",
        "recovering",
        "streak",
        "windows",
    )

    def __init__(self) -> None:
        self.windows = PairWindows()
        self.streak = 0  # errors in a row
        self.ejected_until: float | None = None
        self.recovering = False
        self.proven = 0  # successes in a row while recovering
        self.reason: str | None = None
        self.ejections: deque[float] = deque(maxlen=_EJECTIONS_KEPT)  # start times
        self.judge_after = NEVER
        self.adopted = False  # the ejection came from another replica: not published again

    def ejected(self, now: float) -> bool:
        return self.ejected_until is not None and now < self.ejected_until


class QualityStore:
    """Quality figures and ejections of every (backend, model) pair; see the module docstring.
    ``clock`` returns monotonic seconds; every method reads it at most once."""

    def __init__(self, settings: QualityConfig, *, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()  # least recent first
        self._five_width, _ = WINDOWS["5m"]
        self._buckets = settings.window_seconds // BUCKET_SECONDS
        # view(): the shared base, the changes since, the pairs to compute again, the last one.
        self._base: dict[tuple[str, str], QualityView] = {}
        self._top: dict[tuple[str, str], QualityView | None] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._snapshot: QualitySnapshot | None = None
        self._view_epoch = int(clock() // self._five_width)  # of the last refresh
        self._remote: dict[tuple[str, str], Shared] = {}  # the other replicas' sums

    @property
    def settings(self) -> QualityConfig:
        return self._settings

    def record_success(
        self,
        backend: str,
        model: str,
        *,
        ttft_s: float | None,
        total_s: float | None,
        output_tokens: int | None = None,
        stream: bool = False,
    ) -> None:
        """An attempt that succeeded. ``ttft_s``: seconds to the first token (None when not
        measured); ``total_s``: seconds to the end (None for a stream at its first chunk:
        :meth:`record_end` adds it); a stream's ``output_tokens`` over ``total_s - ttft_s`` give
        its tokens per second."""
        now = self._clock()
        pair = self._touch(backend, model)
        ttft_ms = None if ttft_s is None else (ttft_s * 1000.0 if ttft_s > 0.0 else 0.0)
        total_ms, tokens, seconds = _end(ttft_s, total_s, output_tokens if stream else None)
        pair.windows.add_success(now, ttft_ms, total_ms, tokens, seconds)
        pair.streak = 0
        if pair.recovering and not pair.ejected(now):
            pair.proven += 1
            if pair.proven >= self._settings.recovery_successes:
                pair.recovering, pair.ejected_until, pair.reason = False, None, None
                pair.proven = 0

    def record_end(
        self,
        backend: str,
        model: str,
        *,
        ttft_s: float,
        total_s: float,
        output_tokens: int | None,
    ) -> None:
        """The end of a stream whose success (its first chunk) was recorded: its total time and
        its ``output_tokens`` for the tokens per second (a pair forgotten since is not
        recreated)."""
        pair = self._pairs.get((backend, model))
        if pair is not None:
            total_ms, tokens, seconds = _end(ttft_s, total_s, output_tokens)
            pair.windows.add_end(self._clock(), total_ms, tokens, seconds)

    def record_failure(self, backend: str, model: str, kind: Failure) -> None:
        """A completed attempt that failed because of the backend (never a client's 4xx)."""
        now = self._clock()
        pair = self._touch(backend, model)
        pair.windows.add_failure(now, kind)
        if kind is Failure.RATE_LIMITED:
            return
        pair.streak += 1
        if pair.ejected(now):
            return
        settings = self._settings
        if pair.recovering:
            self._eject(pair, now, f"failed while recovering ({kind})")
        elif pair.streak >= settings.consecutive_failures:
            self._eject(pair, now, f"{pair.streak} failures in a row (last: {kind})")
        else:
            successes, errors, _, _ = pair.windows.recent(now, self._buckets, pair.judge_after)
            rate = error_rate(successes, errors, settings.min_requests)
            if rate is not None and rate >= settings.error_rate_threshold:
                attempts = int(successes + errors)
                span = _span(settings.window_seconds)
                self._eject(pair, now, f"error rate {rate:.0%} over {span} ({attempts} attempts)")

    def figures(self, backend: str, model: str, window: Window) -> Figures:
        """What ``window`` says about the pair now (empty figures for an unknown pair)."""
        pair = self._pairs.get((backend, model))
        if pair is None:
            return Figures(window)
        totals = pair.windows.totals(window, self._clock())
        return Figures.from_totals(window, totals, self._settings.min_requests)

    def state(self, backend: str, model: str) -> PairState:
        pair = self._pairs.get((backend, model))
        if pair is None:
            return PairState()
        now = self._clock()
        recent = sum(1 for start in pair.ejections if start > now - EJECTION_MEMORY_SECONDS)
        if pair.ejected(now):
            status = PairStatus.EJECTED
        else:
            status = PairStatus.RECOVERING if pair.recovering else PairStatus.OK
        return PairState(status, pair.ejected_until, recent, pair.reason, pair.proven)

    def view(self) -> QualitySnapshot:
        """An immutable snapshot of every pair for the planner. The same object is returned until
        a record, ``forget`` or :meth:`refresh` changes a pair; then only the pairs that changed
        are computed again."""
        if self._dirty or self._snapshot is None:
            now = self._clock()
            for key in self._dirty:
                self._top[key] = self._view_of(key, self._pairs[key], now)
            self._dirty.clear()
            if len(self._top) > max(32, isqrt(len(self._base))):
                merged = {**self._base, **self._top}
                self._base = {key: view for key, view in merged.items() if view is not None}
                self._top = {}
            self._snapshot = QualitySnapshot(self._base, dict(self._top))
        return self._snapshot

    def refresh(self) -> QualitySnapshot:
        """:meth:`view` after recomputing every pair whose figures may have changed by time
        alone (old buckets leaving the window). O(pairs): run it off the request path."""
        epoch = int(self._clock() // self._five_width)
        if epoch != self._view_epoch:
            # A pair whose newest bucket had left the window at the last refresh cannot change.
            oldest = self._view_epoch - self._buckets
            self._dirty.update(k for k, p in self._pairs.items() if p.windows.five.head > oldest)
            self._view_epoch = epoch
        return self.view()

    def shared(self, wall_offset: float) -> dict[tuple[str, str], Shared]:
        """What this replica publishes: each pair's routing-window sums and the ejection it
        started (``ejected_until`` in wall-clock seconds: monotonic + ``wall_offset``)."""
        now = self._clock()
        published: dict[tuple[str, str], Shared] = {}
        for key, pair in self._pairs.items():
            sums = self._local(pair, now)
            ejected = pair.ejected(now) and not pair.adopted
            if sums.empty and not ejected:
                continue
            if ejected:
                assert pair.ejected_until is not None
                sums = replace(sums, ejected_until=pair.ejected_until + wall_offset)
                sums = replace(sums, reason=pair.reason)
            published[key] = sums
        return published

    def merge(self, others: Mapping[tuple[str, str], Shared], wall_offset: float) -> None:
        """Take the other replicas' sums (``others``, summed over them; ``ejected_until`` in
        wall-clock seconds) in place of the previous ones, and adopt the ejections they started
        that end later than this replica's own."""
        now = self._clock()
        changed = set(self._remote) | set(others)
        self._remote = {key: sums for key, sums in others.items() if not sums.empty}
        for key, sums in others.items():
            pair = self._touch(*key) if key in self._remote or sums.ejected_until else None
            until = None if sums.ejected_until is None else sums.ejected_until - wall_offset
            if pair is None or until is None or until <= now:
                continue
            if pair.ejected_until is None or pair.ejected_until < until:
                pair.ejected_until, pair.recovering, pair.adopted = until, True, True
                pair.proven, pair.streak = 0, 0
                pair.reason = f"{sums.reason or 'ejected'} (on another replica)"
                pair.judge_after = int(now // self._five_width)
        self._dirty.update(key for key in changed if key in self._pairs)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (backend, model) with figures, least recently recorded first."""
        return list(self._pairs)

    def forget(self, backend: str) -> None:
        """Drop every pair of ``backend`` (removed from the registry). O(pairs)."""
        for key in [key for key in self._pairs if key[0] == backend]:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._pairs)

    def _touch(self, backend: str, model: str) -> _Pair:
        key = (backend, model)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = _Pair()
            if len(self._pairs) > self._settings.max_pairs:
                self._drop(next(iter(self._pairs)))
        else:
            self._pairs.move_to_end(key)
        self._dirty.add(key)
        return pair

    def _drop(self, key: tuple[str, str]) -> None:
        del self._pairs[key]
        self._dirty.discard(key)
        if key in self._base:
            self._top[key] = None
        else:
            self._top.pop(key, None)
        self._snapshot = None

    def _local(self, pair: _Pair, now: float) -> Shared:
        windows, buckets = pair.windows, self._buckets
        successes, errors, ttft_sum, ttft_count = windows.recent(now, buckets)
        judged_successes, judged_errors = successes, errors
        if pair.judge_after != NEVER:  # back from an ejection: judged on its new attempts
            judged_successes, judged_errors, _, _ = windows.recent(now, buckets, pair.judge_after)
        return Shared(successes, errors, judged_successes, judged_errors, ttft_sum, ttft_count)

    def _eject(self, pair: _Pair, now: float, reason: str) -> None:
        settings = self._settings
        while pair.ejections and pair.ejections[0] <= now - EJECTION_MEMORY_SECONDS:
            pair.ejections.popleft()
        pair.ejections.append(now)
        doublings = min(len(pair.ejections) - 1, 32)
        seconds = settings.base_ejection_seconds * 2.0**doublings
        pair.ejected_until = now + min(seconds, settings.max_ejection_seconds)
        pair.recovering, pair.proven, pair.streak, pair.reason = True, 0, 0, reason
        pair.judge_after, pair.adopted = int(now // self._five_width), False

    def _view_of(self, key: tuple[str, str], pair: _Pair, now: float) -> QualityView:
        local = self._local(pair, now)
        remote = self._remote.get(key)
        sums = local if remote is None else local.plus(remote)
        least = self._settings.min_requests
        rate = error_rate(sums.successes, sums.errors, least)
        judged = error_rate(sums.judged_successes, sums.judged_errors, least)
        ttft_ms = mean(sums.ttft_sum, sums.ttft_count)
        ttft_penalty, error_penalty = penalties(ttft_ms, judged, self._settings)
        return QualityView(
            error_rate=rate,
            ttft_ms=ttft_ms,
            ttft_penalty=ttft_penalty,
            error_penalty=error_penalty,
            ejected_until=pair.ejected_until,
            recovering=pair.recovering,
            reason=pair.reason,
        )
