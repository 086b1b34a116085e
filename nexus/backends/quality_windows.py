"""Rolling windows of request quality for one (backend, model) pair: fixed rings of time buckets,
and the :class:`Figures` read out of them. Pure: the caller passes the (monotonic) time.

Layout (:data:`WINDOWS`), bucket width × bucket count:

- ``5m``: 30 × 10 s (the finest: routing and ejection read its newest ``window_seconds``);
- ``1h``: 12 × 5 min;
- ``24h``: 24 × 1 h.

A record at time ``t`` belongs to bucket ``t // width`` of each window. Figures read at ``now``
sum the buckets ``now // width - count + 1 .. now // width``: a record counts for at least
``(count - 1) * width`` seconds (4 min 50 s for ``5m``) and never once it is older than the
window.

Cost: a record adds to the current 10-second bucket only (O(1)); when time moves to a new
10-second bucket, the closed one is folded into the ``1h`` and ``24h`` rings (their widths are
multiples of 10 s, so it lands in the very bucket its records belong to), and the buckets skipped
over are cleared (at most ``count``: amortised O(1)). The ``5m`` ring keeps running sums, so its
figures cost O(1) to read; the others are summed when read. Each bucket is :data:`FIELDS` doubles
in one flat ``array`` per ring: a pair costs ``(66 + 1) * 14 * 8`` bytes (about 7.5 KB) plus small
object overhead, however long it lives. The clock must not go backwards: if it does, records land
in the newest bucket.

Failures are counted by :class:`~nexus.errors.Failure` kind. A 429 (``RATE_LIMITED``) is counted
as an attempt and under its kind, but it is not an *error*: the cooldown deals with it, so it is
left out of the error rate (numerator and denominator), as it is out of health.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from nexus.errors import Failure

Window = Literal["5m", "1h", "24h"]

#: Window name -> (bucket width in seconds, bucket count); ``5m`` first.
WINDOWS: Mapping[Window, tuple[float, int]] = MappingProxyType(
    {"5m": (10.0, 30), "1h": (300.0, 12), "24h": (3600.0, 24)}
)
assert all(width % WINDOWS["5m"][0] == 0 for width, _ in WINDOWS.values())

# The fields of one bucket, in order.
SUCCESSES = 0
ERRORS = 1  # failures of any kind but RATE_LIMITED
TTFT_SUM = 2  # milliseconds
TTFT_COUNT = 3
TOTAL_SUM = 4  # milliseconds, successes whose end is known
TOTAL_COUNT = 5
GEN_TOKENS = 6  # output tokens of streams...
GEN_SECONDS = 7  # ...and the seconds they took after the first token
KIND_BASE = 8  # then one count per Failure kind, in enum order
KINDS: tuple[Failure, ...] = tuple(Failure)
KIND_INDEX: Mapping[Failure, int] = MappingProxyType(
    {kind: KIND_BASE + i for i, kind in enumerate(KINDS)}
)
FIELDS = KIND_BASE + len(KINDS)

#: The head of a ring that never saw a record: far enough back that any time clears it all.
NEVER = -(2**62)


def _zeros(count: int) -> array[float]:
    return array("d", bytes(8 * count))


_ZERO_BUCKET = _zeros(FIELDS)  # read only


class Ring:
    """``count`` buckets of ``width`` seconds, the newest numbered ``head``. With ``running``,
    ``sums`` holds the sum of every field over the ring (the caller adds to both)."""

    __slots__ = ("count", "data", "head", "sums", "width")

    def __init__(self, width: float, count: int, *, running: bool = False) -> None:
        self.width = width
        self.count = count
        self.data = _zeros(FIELDS * count)
        self.head = NEVER
        self.sums = _zeros(FIELDS) if running else None

    def base(self, now: float) -> int:
        """The index of the first field of the bucket for ``now``, older buckets rolled out."""
        epoch = int(now // self.width)
        if epoch > self.head:
            self.roll(epoch)
        return (self.head % self.count) * FIELDS

    def roll(self, epoch: int) -> None:
        """Make ``epoch`` the newest bucket, clearing those that leave the window."""
        data, count, sums = self.data, self.count, self.sums
        if epoch - self.head >= count:  # cleared in place: callers may hold the arrays
            data[:] = _zeros(FIELDS * count)
            if sums is not None:
                sums[:] = _zeros(FIELDS)
        else:
            for bucket in range(self.head + 1, epoch + 1):
                start = (bucket % count) * FIELDS
                if sums is not None:
                    for index, value in enumerate(data[start : start + FIELDS]):
                        if value:
                            sums[index] -= value
                data[start : start + FIELDS] = _ZERO_BUCKET
        self.head = epoch

    def bucket(self, number: int) -> array[float]:
        start = (number % self.count) * FIELDS
        return self.data[start : start + FIELDS]

    def totals(self) -> list[float]:
        """Every field summed over the ring as it stands."""
        if self.sums is not None:
            return list(self.sums)
        data = self.data
        return [sum(data[index::FIELDS]) for index in range(FIELDS)]


class PairWindows:
    """The ``5m``, ``1h`` and ``24h`` windows of one pair."""

    __slots__ = ("day", "five", "hour")

    def __init__(self) -> None:
        (five_w, five_n), (hour_w, hour_n), (day_w, day_n) = WINDOWS.values()
        self.five = Ring(five_w, five_n, running=True)
        self.hour = Ring(hour_w, hour_n)
        self.day = Ring(day_w, day_n)

    def _at(self, now: float) -> int:
        """The index of ``now``'s bucket in the 5-minute ring, folding the closed one away."""
        five = self.five
        epoch = int(now // five.width)
        if epoch > five.head:
            if five.head != NEVER:
                self._fold()
            five.roll(epoch)
        return (five.head % five.count) * FIELDS

    def _fold(self) -> None:
        """Add the newest 10-second bucket to the ``1h`` and ``24h`` rings (it is closing)."""
        five, hour, day = self.five, self.hour, self.day
        closed = five.bucket(five.head)
        if not any(closed):
            return
        began = five.head * five.width
        at_hour, at_day = hour.base(began), day.base(began)
        hour_data, day_data = hour.data, day.data
        for index, value in enumerate(closed):
            if value:
                hour_data[at_hour + index] += value
                day_data[at_day + index] += value

    def add_success(
        self, now: float, ttft_ms: float | None, total_ms: float | None, tokens: int, seconds: float
    ) -> None:
        """A success; ``total_ms`` None while its end is not known yet (a stream at its first
        chunk: :meth:`add_end` adds it)."""
        at, data, sums = self._at(now), self.five.data, self.five.sums
        assert sums is not None
        data[at + SUCCESSES] += 1.0
        sums[SUCCESSES] += 1.0
        if ttft_ms is not None:
            data[at + TTFT_SUM] += ttft_ms
            sums[TTFT_SUM] += ttft_ms
            data[at + TTFT_COUNT] += 1.0
            sums[TTFT_COUNT] += 1.0
        self.add_end(now, total_ms, tokens, seconds)

    def add_end(self, now: float, total_ms: float | None, tokens: int, seconds: float) -> None:
        """The end of a success: its total time, and a stream's tokens after the first."""
        at, data, sums = self._at(now), self.five.data, self.five.sums
        assert sums is not None
        if total_ms is not None:
            data[at + TOTAL_SUM] += total_ms
            sums[TOTAL_SUM] += total_ms
            data[at + TOTAL_COUNT] += 1.0
            sums[TOTAL_COUNT] += 1.0
        if tokens:
            data[at + GEN_TOKENS] += tokens
            sums[GEN_TOKENS] += tokens
            data[at + GEN_SECONDS] += seconds
            sums[GEN_SECONDS] += seconds

    def add_failure(self, now: float, kind: Failure) -> None:
        at, data, sums = self._at(now), self.five.data, self.five.sums
        assert sums is not None
        index = KIND_INDEX[kind]
        data[at + index] += 1.0
        sums[index] += 1.0
        if kind is not Failure.RATE_LIMITED:
            data[at + ERRORS] += 1.0
            sums[ERRORS] += 1.0

    def totals(self, window: Window, now: float) -> list[float]:
        """Every field summed over ``window`` at ``now``."""
        self._at(now)
        if window == "5m":
            return self.five.totals()
        ring = self.hour if window == "1h" else self.day
        ring.base(now)
        # The current 10-second bucket is not folded yet: add it.
        current = self.five.bucket(self.five.head)
        return [total + value for total, value in zip(ring.totals(), current, strict=True)]

    def recent(
        self, now: float, buckets: int, after: int = NEVER
    ) -> tuple[float, float, float, float]:
        """(successes, errors, TTFT sum, TTFT count) over the newest ``buckets`` 10-second
        buckets at ``now`` (at most 30), counting only the buckets numbered above ``after`` (a
        pair back from an ejection is judged on its new attempts). Reads without rolling: the
        running sums when the whole ring counts, else at most ``buckets`` buckets."""
        five = self.five
        sums = five.sums
        assert sums is not None
        epoch = int(now // five.width)
        if five.head == NEVER or epoch - five.head >= five.count:
            return 0.0, 0.0, 0.0, 0.0
        first = max(epoch - buckets + 1, after + 1)
        if first <= five.head - five.count + 1:
            return sums[SUCCESSES], sums[ERRORS], sums[TTFT_SUM], sums[TTFT_COUNT]
        data, values = five.data, [0.0, 0.0, 0.0, 0.0]
        for number in range(first, five.head + 1):
            start = (number % five.count) * FIELDS
            values[0] += data[start + SUCCESSES]
            values[1] += data[start + ERRORS]
            values[2] += data[start + TTFT_SUM]
            values[3] += data[start + TTFT_COUNT]
        return values[0], values[1], values[2], values[3]


def error_rate(successes: float, errors: float, min_requests: int) -> float | None:
    """``errors / (successes + errors)``, or None below ``min_requests`` such attempts."""
    judged = successes + errors
    return errors / judged if judged >= min_requests and judged > 0 else None


def mean(total: float, count: float) -> float | None:
    """``total / count``; None without data (``count`` is an exact count, never drifted)."""
    return total / count if count >= 1 else None


def _rate(tokens: float, seconds: float) -> float | None:
    return tokens / seconds if round(tokens) and seconds > 0 else None


@dataclass(frozen=True, slots=True)
class Figures:
    """What one window says about a pair.

    ``attempts`` counts successes and failures of every kind; ``failures`` holds the kinds seen
    (never a zero); ``errors`` is every failure but ``RATE_LIMITED``. ``error_rate`` is
    ``errors / (successes + errors)`` once that denominator reaches ``min_requests``, else None
    (too few attempts to say). ``ttft_ms`` is the mean over successes that reported a time to first
    token, ``total_ms`` the mean over successes whose end is known, ``tokens_per_second`` the
    output tokens of streams over the time they took after their first token. A mean is None
    without data. (No percentiles: buckets keep sums, not samples.)
    """

    window: Window
    attempts: int = 0
    successes: int = 0
    errors: int = 0
    failures: Mapping[Failure, int] = field(default_factory=dict)
    error_rate: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_second: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures", MappingProxyType(dict(self.failures)))

    @classmethod
    def from_totals(cls, window: Window, totals: list[float], min_requests: int) -> Figures:
        """The figures of ``totals`` (one :meth:`PairWindows.totals` result)."""
        counts = {kind: round(totals[KIND_INDEX[kind]]) for kind in KINDS}
        failures = {kind: count for kind, count in counts.items() if count}
        successes = round(totals[SUCCESSES])
        return cls(
            window=window,
            attempts=successes + sum(failures.values()),
            successes=successes,
            errors=round(totals[ERRORS]),
            failures=failures,
            error_rate=error_rate(successes, round(totals[ERRORS]), min_requests),
            ttft_ms=mean(totals[TTFT_SUM], round(totals[TTFT_COUNT])),
            total_ms=mean(totals[TOTAL_SUM], round(totals[TOTAL_COUNT])),
            tokens_per_second=_rate(totals[GEN_TOKENS], totals[GEN_SECONDS]),
        )
