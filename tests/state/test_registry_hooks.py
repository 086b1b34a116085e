"""The registry's hooks for shared state, without Redis: what the listener is told, and what
the ``apply_shared_*`` methods change."""

from __future__ import annotations

from nexus.backends.registry import Registry
from nexus.backends.state import ProbeResult, Status
from nexus.backends.transitions import SUCCESS, Outcome, Thresholds
from nexus.config.model import BackendConfig
from nexus.errors import Failure
from tests.backends.views import view as view_of


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def status_changed(self, name: str, status: Status, error: str | None) -> None:
        self.calls.append(("status", name, status, error))

    def cooled_down(self, name: str, seconds: float) -> None:
        self.calls.append(("cooldown", name, seconds))

    def leased(self, name: str, lease_id: int) -> None:
        self.calls.append(("leased", name, lease_id))

    def released(self, name: str, lease_id: int) -> None:
        self.calls.append(("released", name, lease_id))


def registry() -> tuple[Registry, Recorder, Clock]:
    clock = Clock()
    gpu = BackendConfig(name="gpu", url="http://127.0.0.1:1", type="vllm", max_concurrent=2)
    reg = Registry([gpu], thresholds=Thresholds(failure=2, recovery=2), clock=clock)
    recorder = Recorder()
    reg.listener = recorder
    return reg, recorder, clock


def test_the_listener_hears_transitions_cooldowns_and_leases_only() -> None:
    reg, heard, _ = registry()
    reg.record_probe("gpu", ProbeResult(ok=True), next_probe_at=None)
    reg.record_outcome("gpu", SUCCESS)  # no change: nothing told
    reg.record_outcome("gpu", Outcome(Failure.TIMEOUT, "slow"))  # below the threshold
    reg.record_outcome("gpu", Outcome(Failure.RATE_LIMITED, "429", retry_after=7))
    reg.record_outcome("gpu", Outcome(Failure.REFUSED, "connection refused"))
    lease = reg.lease("gpu")
    lease.release()
    lease.release()
    assert heard.calls == [
        ("status", "gpu", Status.HEALTHY, None),
        ("cooldown", "gpu", 7.0),
        ("status", "gpu", Status.UNHEALTHY, "connection refused"),
        ("leased", "gpu", lease.id),
        ("released", "gpu", lease.id),
    ]


def test_shared_changes_apply_without_telling_the_listener() -> None:
    reg, heard, clock = registry()
    reg.record_probe("gpu", ProbeResult(ok=True), next_probe_at=None)
    heard.calls.clear()
    assert reg.apply_shared_status("gpu", Status.UNHEALTHY, "refused (replica r1)")
    assert not reg.apply_shared_status("gpu", Status.UNHEALTHY, "again")
    reg.apply_shared_cooldown("gpu", 5)
    reg.apply_shared_cooldown("gpu", 1)  # shorter: ignored
    reg.set_shared_in_flight({"gpu": 3, "gone": 1})
    view = view_of(reg.snapshot(), "gpu")
    assert view is not None
    assert (view.status, view.last_error) == (Status.UNHEALTHY, "refused (replica r1)")
    assert view.cooldown_until == clock.now + 5
    assert view.in_flight == 3 and view.at_capacity()
    assert heard.calls == []
    reg.record_probe("gpu", ProbeResult(ok=True), next_probe_at=None)
    reg.record_probe("gpu", ProbeResult(ok=True), next_probe_at=None)
    assert heard.calls == [("status", "gpu", Status.HEALTHY, "refused (replica r1)")]


def test_without_a_listener_nothing_is_told() -> None:
    reg, heard, _ = registry()
    reg.listener = None
    reg.lease("gpu").release()
    reg.record_outcome("gpu", Outcome(Failure.REFUSED, "x"))
    assert heard.calls == []
