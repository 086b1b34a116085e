"""The quality store: windows, ejection, recovery, penalty, memory bound, snapshots. Fake clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import PairStatus, QualitySnapshot, QualityView, penalties
from nexus.backends.quality_windows import WINDOWS, Window
from nexus.config.quality import QualityConfig
from nexus.errors import Failure

START = 12 * 86_400.0  # a monotonic clock far from zero, on a bucket boundary of every window


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(**overrides: Any) -> tuple[QualityStore, Clock]:
    clock = Clock()
    return QualityStore(QualityConfig(**overrides), clock=clock), clock


def ok(store: QualityStore, backend: str = "b", model: str = "m", **kw: Any) -> None:
    values: dict[str, Any] = {
        "ttft_s": 0.1,
        "total_s": 1.0,
        "output_tokens": None,
        "stream": False,
    }
    store.record_success(backend, model, **{**values, **kw})


def allows(store: QualityStore, clock: Clock, draw: float) -> bool:
    """Whether the planner would send ("b", "m") a request now, for a probe ``draw``."""
    view = store.view().get(("b", "m"))
    return view is None or view.allows(clock.now, draw, store.settings.probe_share)


def score_penalty(store: QualityStore) -> float:
    """The smart-score penalty of ("b", "m") in the planner's snapshot (after a refresh)."""
    view = store.refresh().get(("b", "m"))
    return 0.0 if view is None else view.penalty


def fail(store: QualityStore, kind: Failure = Failure.TIMEOUT, times: int = 1) -> None:
    for _ in range(times):
        store.record_failure("b", "m", kind)


# --- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_record_counts_until_its_bucket_leaves_the_window(window: Window) -> None:
    width, count = WINDOWS[window]
    store, clock = make()
    ok(store)  # at the very start of a bucket
    assert store.figures("b", "m", window).attempts == 1
    clock.now = START + count * width - 0.001
    assert store.figures("b", "m", window).attempts == 1
    clock.now = START + count * width
    assert store.figures("b", "m", window).attempts == 0


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_record_counts_for_at_least_the_window_less_one_bucket(window: Window) -> None:
    width, count = WINDOWS[window]
    store, clock = make()
    clock.now = START + width - 0.001  # at the very end of a bucket
    fail(store)
    clock.now = START + count * width - 0.001  # its bucket is the oldest of the window
    assert store.figures("b", "m", window).failures == {Failure.TIMEOUT: 1}
    clock.now = START + count * width  # 0.001 s older than (count - 1) buckets: gone
    assert store.figures("b", "m", window).attempts == 0


def test_records_in_later_buckets_keep_the_long_windows_exact() -> None:
    store, clock = make()
    ok(store)
    clock.advance(15)  # the first 10-second bucket closes and is folded into 1h and 24h
    fail(store)
    assert [store.figures("b", "m", w).attempts for w in WINDOWS] == [2, 2, 2]
    clock.advance(300)
    assert [store.figures("b", "m", w).attempts for w in WINDOWS] == [0, 2, 2]
    clock.advance(3600)
    assert [store.figures("b", "m", w).attempts for w in WINDOWS] == [0, 0, 2]
    clock.advance(24 * 3600)
    assert [store.figures("b", "m", w).attempts for w in WINDOWS] == [0, 0, 0]


def test_figures_hold_means_rates_and_stream_throughput() -> None:
    store, _ = make(min_requests=4)
    ok(store, ttft_s=0.2, total_s=2.2, output_tokens=100, stream=True)  # 100 tokens in 2 s
    ok(store, ttft_s=0.4, total_s=1.4, output_tokens=50, stream=True)  # 50 tokens in 1 s
    ok(store, ttft_s=None, total_s=0.6, output_tokens=30, stream=False)  # no TTFT, not a stream
    fail(store, Failure.SERVER_ERROR)
    fail(store, Failure.RATE_LIMITED)
    figures = store.figures("b", "m", "5m")
    assert (figures.attempts, figures.successes, figures.errors) == (5, 3, 1)
    assert figures.failures == {Failure.SERVER_ERROR: 1, Failure.RATE_LIMITED: 1}
    assert figures.error_rate == pytest.approx(1 / 4)  # a 429 is neither an error nor judged
    assert figures.ttft_ms == pytest.approx(300)
    assert figures.total_ms == pytest.approx(1400)
    assert figures.tokens_per_second == pytest.approx(150 / 3)


def test_an_unknown_pair_has_empty_figures_and_no_penalty() -> None:
    store, clock = make()
    figures = store.figures("b", "m", "1h")
    assert (figures.attempts, figures.error_rate, figures.ttft_ms) == (0, None, None)
    assert score_penalty(store) == 0.0
    assert store.state("b", "m").status is PairStatus.OK
    assert allows(store, clock, 0.99)
    assert len(store) == 0


def test_the_error_rate_counts_only_from_min_requests_attempts() -> None:
    store, _ = make(min_requests=10, consecutive_failures=100, error_rate_threshold=1.0)
    for _ in range(4):
        ok(store)
    fail(store, times=4)
    fail(store, Failure.RATE_LIMITED, times=5)  # not judged: still 8 attempts that count
    assert store.figures("b", "m", "5m").error_rate is None
    ok(store)
    fail(store)
    assert store.figures("b", "m", "5m").error_rate == pytest.approx(0.5)


# --- ejection --------------------------------------------------------------------------------


def test_consecutive_failures_eject_for_the_base_time() -> None:
    store, clock = make(consecutive_failures=5)
    fail(store, times=4)
    ok(store)  # a success resets the count
    fail(store, times=4)
    fail(store, Failure.RATE_LIMITED, times=3)  # a 429 neither counts nor resets
    assert store.state("b", "m").status is PairStatus.OK
    fail(store)
    state = store.state("b", "m")
    assert state.status is PairStatus.EJECTED
    assert state.ejected_until == START + 30
    assert state.ejections == 1
    assert state.reason == "5 failures in a row (last: timeout)"
    assert not allows(store, clock, 0.0)
    clock.advance(29.9)
    assert store.state("b", "m").status is PairStatus.EJECTED


def test_an_error_rate_at_the_threshold_ejects() -> None:
    store, _ = make(consecutive_failures=100, min_requests=10, error_rate_threshold=0.5)
    for _ in range(4):
        ok(store)
        fail(store)
    ok(store)  # 9 attempts, 4 errors
    assert store.state("b", "m").status is PairStatus.OK
    fail(store)  # 10 attempts, 5 errors: 50 %
    state = store.state("b", "m")
    assert state.status is PairStatus.EJECTED
    assert state.reason == "error rate 50% over 5 min (10 attempts)"


def test_a_pair_back_from_an_ejection_is_judged_on_its_new_attempts() -> None:
    store, clock = make(consecutive_failures=100, min_requests=10, error_rate_threshold=0.5)
    fail(store, times=10)
    assert store.state("b", "m").reason == "error rate 100% over 5 min (10 attempts)"
    clock.advance(30)
    for _ in range(3):
        ok(store)
    assert store.state("b", "m").status is PairStatus.OK
    fail(store)  # the 5-minute rate is 11 / 14, but only 1 of 4 new attempts failed
    assert store.state("b", "m").status is PairStatus.OK
    view = store.view()[("b", "m")]
    assert view.error_rate == pytest.approx(11 / 14), "shown: every attempt in the window"
    assert view.error_penalty == 0.0, "penalised: the new attempts only (4 < min_requests)"
    for _ in range(2):
        ok(store)
    fail(store, times=4)  # now 5 of 10 new attempts
    assert store.state("b", "m").status is PairStatus.EJECTED


def test_the_ejection_time_doubles_with_each_ejection_within_an_hour_up_to_the_cap() -> None:
    store, clock = make(base_ejection_seconds=30, max_ejection_seconds=600)
    fail(store, times=5)
    lengths = []
    for _ in range(7):
        state = store.state("b", "m")
        lengths.append(state.ejected_until - clock.now)  # type: ignore[operator]
        clock.now = state.ejected_until  # type: ignore[assignment]
        assert store.state("b", "m").status is PairStatus.RECOVERING
        fail(store)  # a failure while recovering: out again, for longer
    assert lengths == [30, 60, 120, 240, 480, 600, 600]


def test_ejections_older_than_an_hour_no_longer_lengthen_the_next() -> None:
    store, clock = make()
    fail(store, times=5)
    clock.advance(30)
    fail(store)  # the second ejection: 60 s
    assert store.state("b", "m").ejected_until == clock.now + 60
    clock.advance(3600)
    for _ in range(3):
        ok(store)
    fail(store, times=5)
    state = store.state("b", "m")
    assert (state.ejected_until, state.ejections) == (clock.now + 30, 1)


def test_failures_of_attempts_in_flight_do_not_extend_an_ejection() -> None:
    store, clock = make()
    fail(store, times=5)
    until = store.state("b", "m").ejected_until
    clock.advance(10)
    fail(store, times=7)
    ok(store)  # nor does a success shorten it
    state = store.state("b", "m")
    assert (state.status, state.ejected_until, state.ejections) == (
        PairStatus.EJECTED,
        until,
        1,
    )


# --- recovery --------------------------------------------------------------------------------


def test_recovery_lets_the_probe_share_through_until_enough_successes() -> None:
    store, clock = make(probe_share=0.1, recovery_successes=3)
    fail(store, times=5)
    assert [allows(store, clock, draw) for draw in (0.0, 0.05, 0.5)] == [False] * 3
    clock.advance(30)
    state = store.state("b", "m")
    assert (state.status, state.successes) == (PairStatus.RECOVERING, 0)
    assert [allows(store, clock, draw) for draw in (0.0, 0.099, 0.1, 0.5)] == [
        True,
        True,
        False,
        False,
    ]
    ok(store)
    ok(store)
    assert store.state("b", "m").successes == 2
    assert not allows(store, clock, 0.5)
    ok(store)
    state = store.state("b", "m")
    assert (state.status, state.ejected_until, state.reason) == (PairStatus.OK, None, None)
    assert allows(store, clock, 0.99)


def test_a_failure_while_recovering_ejects_again_for_longer() -> None:
    store, clock = make(recovery_successes=3)
    fail(store, times=5)
    clock.advance(30)
    ok(store)
    ok(store)
    fail(store, Failure.SERVER_ERROR)
    state = store.state("b", "m")
    assert state.status is PairStatus.EJECTED
    assert (state.ejected_until, state.ejections) == (clock.now + 60, 2)
    assert state.reason == "failed while recovering (server_error)"


def test_a_429_while_recovering_does_not_eject() -> None:
    store, clock = make()
    fail(store, times=5)
    clock.advance(30)
    fail(store, Failure.RATE_LIMITED)
    assert store.state("b", "m").status is PairStatus.RECOVERING


# --- penalty ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttft_ms", "rate", "expected"),
    [
        (None, None, 0.0),
        (2000, None, 0.0),
        (3000, None, 0.0),
        (4500, None, 0.5),  # Rust: min((4500 - 3000) / 3000, 1)
        (6000, None, 1.0),
        (9000, None, 1.0),
        (None, 0.0, 0.0),
        (None, 0.1, 0.1),  # the score times the success rate
        (None, 0.5, 0.5),
        (None, 1.0, 1.0),
        (4500, 0.25, 0.625),  # 1 - (1 - 0.5) * (1 - 0.25)
    ],
)
def test_penalty_formula(ttft_ms: float | None, rate: float | None, expected: float) -> None:
    ttft_penalty, error_penalty = penalties(ttft_ms, rate, QualityConfig())
    view = QualityView(rate, ttft_ms, ttft_penalty, error_penalty)
    assert view.penalty == pytest.approx(expected)


def test_score_penalty_reads_the_5_minute_figures() -> None:
    store, clock = make(min_requests=10, consecutive_failures=100)
    ok(store, ttft_s=4.0)
    ok(store, ttft_s=5.0)  # mean 4.5 s
    assert score_penalty(store) == pytest.approx(0.5)
    for _ in range(7):
        ok(store, ttft_s=None)
    fail(store)  # 1 error in 10 attempts: 0.1 of the score
    assert score_penalty(store) == pytest.approx(1 - 0.5 * 0.9)
    clock.advance(300)
    assert score_penalty(store) == 0.0


def test_a_fleet_without_failures_or_slow_first_tokens_has_no_penalty() -> None:
    store, _ = make()
    for index in range(50):
        ok(store, f"b{index % 5}", ttft_s=2.9)
    assert all(view.penalty == 0.0 for view in store.view().values())


# --- memory and removal ----------------------------------------------------------------------


def test_the_least_recently_recorded_pair_is_forgotten_beyond_max_pairs() -> None:
    store, _ = make(max_pairs=3)
    for backend in ("a", "b", "c"):
        ok(store, backend)
    ok(store, "a")  # a is now the most recent
    ok(store, "d")
    assert len(store) == 3
    assert store.figures("b", "m", "5m").attempts == 0
    assert store.figures("a", "m", "5m").attempts == 2
    assert set(store.view()) == {("a", "m"), ("c", "m"), ("d", "m")}


def test_forget_drops_every_pair_of_one_backend() -> None:
    store, _ = make()
    ok(store, "gone", "m1")
    ok(store, "gone", "m2")
    ok(store, "kept", "m1")
    before = store.view()
    store.forget("gone")
    assert set(store.view()) == {("kept", "m1")}
    assert len(before) == 3  # an earlier snapshot does not change
    assert store.figures("gone", "m1", "24h").attempts == 0


# --- view ------------------------------------------------------------------------------------


def test_view_is_cached_until_a_record_or_a_refresh() -> None:
    store, clock = make(min_requests=1)
    fail(store, Failure.SERVER_ERROR)
    first = store.view()
    assert store.view() is first
    assert first[("b", "m")].error_rate == 1.0
    ok(store)
    second = store.view()
    assert second is not first
    assert second[("b", "m")].error_rate == 0.5
    assert first[("b", "m")].error_rate == 1.0  # snapshots are immutable
    clock.advance(5)  # same 10-second bucket
    assert store.refresh() is second
    clock.advance(300)
    assert store.view() is second, "time alone changes nothing on the request path"
    expired = store.refresh()
    assert expired[("b", "m")].error_rate is None
    with pytest.raises(TypeError):
        expired[("b", "m")] = QualityView(None, None)  # type: ignore[index]


def test_view_shows_ejection_and_recovery_over_time() -> None:
    store, clock = make()
    fail(store, times=5)
    view = store.view()[("b", "m")]
    assert (view.ejected_until, view.recovering) == (START + 30, True)
    assert view.reason == "5 failures in a row (last: timeout)"
    assert view.status(START) is PairStatus.EJECTED
    assert not view.allows(START, 0.0, 0.1)
    assert view.status(START + 30) is PairStatus.RECOVERING
    assert view.allows(START + 30, 0.05, 0.1)
    assert not view.allows(START + 30, 0.5, 0.1)


@dataclass
class _Op:
    backend: int
    forget: bool


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.builds(_Op, st.integers(0, 150), st.integers(0, 5).map(lambda n: n == 0)),
        min_size=100,
        max_size=400,
    )
)
def test_every_snapshot_equals_a_fresh_computation(ops: list[_Op]) -> None:
    """Snapshots share a base and layer the changes on it: they must read as a plain dict."""
    store, _ = make(max_pairs=40)  # evictions, and more changes than a snapshot layers
    taken: list[tuple[QualitySnapshot, dict[tuple[str, str], QualityView]]] = []
    expected: dict[tuple[str, str], QualityView] = {}
    for op in ops:
        key = (f"b{op.backend}", "m")
        if op.forget:
            store.forget(key[0])
        else:
            ok(store, *key, ttft_s=op.backend / 10)
            expected[key] = store._view_of(key, store._pairs[key], START)
        expected = {key: view for key, view in expected.items() if key in store._pairs}
        taken.append((store.view(), dict(expected)))
    for snapshot, fresh in taken:
        assert dict(snapshot) == fresh
        assert len(snapshot) == len(fresh)
        assert all(key in snapshot for key in fresh)
        assert ("nobody", "m") not in snapshot


# --- the windows against a brute-force count -------------------------------------------------

_KINDS = st.sampled_from([None, *Failure])  # None: a success
_STEP = st.one_of(
    st.floats(0, 12, allow_nan=False),
    st.floats(0, 400, allow_nan=False),
    st.sampled_from([3600.0, 7 * 3600.0, 25 * 3600.0]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_STEP, _KINDS, st.booleans()), min_size=1, max_size=120))
def test_figures_equal_the_records_made_within_the_window(
    events: list[tuple[float, Failure | None, bool]],
) -> None:
    store, clock = make(min_requests=1)
    made: list[tuple[float, Failure | None]] = []
    for step, kind, read in events:
        clock.advance(step)
        if read:  # reads at any time, between records, must not disturb later figures
            for window in WINDOWS:
                _check(store, window, made, clock.now)
        if kind is None:
            ok(store, ttft_s=0.25, total_s=1.0)
        else:
            store.record_failure("b", "m", kind)
        made.append((clock.now, kind))
    for step in (0.0, 7.0, 95.0, 200.0, 3000.0):
        clock.advance(step)
        for window in WINDOWS:
            _check(store, window, made, clock.now)


def _check(
    store: QualityStore, window: Window, made: list[tuple[float, Failure | None]], now: float
) -> None:
    width, count = WINDOWS[window]
    if window == "5m":  # the planner's view reads the same figures without rolling the ring
        view = store.refresh().get(("b", "m"), QualityView(None, None))
        figures = store.figures("b", "m", window)
        assert (view.error_rate, view.ttft_ms) == (figures.error_rate, figures.ttft_ms)
    counted = [(at, kind) for at, kind in made if int(at // width) > int(now // width) - count]
    assert all(now - at < width * count for at, _ in counted)  # never older than the window
    assert all(now - at > width * (count - 1) for at, _ in made if (at, _) not in counted)
    inside = [kind for _, kind in counted]
    figures = store.figures("b", "m", window)
    successes = inside.count(None)
    assert figures.attempts == len(inside)
    assert figures.successes == successes
    assert figures.failures == {k: inside.count(k) for k in Failure if inside.count(k)}
    assert figures.errors == sum(1 for k in inside if k not in (None, Failure.RATE_LIMITED))
    assert figures.ttft_ms == (pytest.approx(250) if successes else None)
    assert figures.total_ms == (pytest.approx(1000) if successes else None)


# --- settings --------------------------------------------------------------------------------


def test_settings_name_the_key_and_the_bad_value() -> None:
    with pytest.raises(ValidationError) as caught:
        QualityConfig(error_rate_threshold=0.0, probe_share=1.5)
    assert [error["loc"] for error in caught.value.errors()] == [
        ("error_rate_threshold",),
        ("probe_share",),
    ]
    with pytest.raises(ValidationError, match="max_ejection_seconds: 10 is below"):
        QualityConfig(max_ejection_seconds=10)


def test_a_shorter_routing_window_forgets_sooner() -> None:
    store, clock = make(window_seconds=30, min_requests=2)
    fail(store, Failure.SERVER_ERROR)
    ok(store, ttft_s=4.5)
    view = store.view()[("b", "m")]
    assert view.error_rate == 0.5 and view.ttft_ms == pytest.approx(4500)
    assert view.ttft_penalty == pytest.approx(0.5) and view.error_penalty == 0.5
    clock.advance(20)
    assert store.refresh()[("b", "m")].error_rate == 0.5  # 20-30 s: still inside
    clock.advance(10)
    gone = store.refresh()[("b", "m")]
    assert (gone.error_rate, gone.ttft_ms, gone.penalty) == (None, None, 0.0)
    assert store.figures("b", "m", "5m").attempts == 2, "the 5-minute figures still hold them"


def test_weights_scale_each_penalty() -> None:
    view = QualityView(0.25, 4500.0, ttft_penalty=0.5, error_penalty=0.5)
    assert view.penalty == pytest.approx(0.75)
    assert view.weighted_penalty(1.0, 0.0) == pytest.approx(0.5)
    assert view.weighted_penalty(0.5, 0.5) == pytest.approx(1 - 0.75 * 0.75)
    assert view.weighted_penalty(0.0, 0.0) == 0.0


# --- cost ------------------------------------------------------------------------------------


def test_100k_records_over_1000_pairs_take_a_few_microseconds_each() -> None:
    # about 0.9 s of CPU alone on 2 cores (a stream's record is two calls: its first chunk and
    # its end), about 3.5 s under the test command's coverage tracing: 30 us a record alone,
    # twice that under coverage
    limit = 6.0 if _coverage_running() else 3.0
    store, clock = make()
    pairs = [(f"b{index % 100}", f"m{index}") for index in range(1000)]
    began = time.process_time()
    for index in range(100_000):
        clock.now += 0.003  # 300 s in all: every pair moves to a new bucket every 3 s
        backend, model = pairs[index % 1000]
        store.record_success(backend, model, ttft_s=0.2, total_s=1.0, output_tokens=40, stream=True)
    assert time.process_time() - began < limit
    assert len(store) == 1000


def _coverage_running() -> bool:
    import sys

    coverage = sys.modules.get("coverage")
    return coverage is not None and coverage.Coverage.current() is not None


def test_view_of_1000_pairs_is_built_once_then_free_until_the_next_record() -> None:
    store, clock = make()
    for index in range(1000):
        ok(store, f"b{index}")
    built = store.view()
    began = time.perf_counter()
    for _ in range(10_000):
        assert store.view() is built
    assert (time.perf_counter() - began) / 10_000 < 20e-6
    ok(store, "b1")
    began = time.perf_counter()
    after = store.view()
    assert time.perf_counter() - began < 1e-3  # the changed pair, not the 1,000
    assert after is not built and len(after) == 1000


# --- replicas --------------------------------------------------------------------------------


def test_replicas_share_their_sums_and_the_ejections_they_started() -> None:
    a, clock = make(min_requests=4, consecutive_failures=100, error_rate_threshold=0.6)
    b = QualityStore(QualityConfig(min_requests=4), clock=clock)
    for _ in range(3):
        ok(a, ttft_s=4.5)
    fail(a, Failure.SERVER_ERROR)
    ok(b, ttft_s=1.5)
    b.merge(a.shared(wall_offset=100.0), wall_offset=100.0)
    view = b.view()[("b", "m")]
    assert view.error_rate == pytest.approx(1 / 5), "a's 4 attempts and b's one"
    assert view.ttft_ms == pytest.approx((3 * 4500 + 1500) / 4)
    assert view.error_penalty == pytest.approx(1 / 5)
    assert b.figures("b", "m", "5m").attempts == 1, "the windows stay b's own"
    fail(a, Failure.SERVER_ERROR, times=4)  # a ejects on its own attempts: 5 of 8
    assert a.state("b", "m").status is PairStatus.EJECTED
    published = a.shared(wall_offset=100.0)
    assert published[("b", "m")].ejected_until == START + 30 + 100.0  # wall clock
    b.merge(published, wall_offset=100.0)
    adopted = b.state("b", "m")
    assert (adopted.status, adopted.ejected_until) == (PairStatus.EJECTED, START + 30)
    assert adopted.reason == "error rate 62% over 5 min (8 attempts) (on another replica)"
    assert adopted.ejections == 0, "adopting does not lengthen b's own next ejection"
    assert b.shared(wall_offset=100.0)[("b", "m")].ejected_until is None, "not echoed back"
    b.merge({}, wall_offset=100.0)
    assert b.view()[("b", "m")].error_rate is None, "a's sums went with a"


def test_a_pair_known_only_to_another_replica_is_penalised_here_too() -> None:
    a, clock = make()
    b = QualityStore(QualityConfig(), clock=clock)
    ok(a, ttft_s=6.0)
    b.merge(a.shared(wall_offset=0.0), wall_offset=0.0)
    assert b.view()[("b", "m")].ttft_penalty == 1.0
