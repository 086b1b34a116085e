"""Issue 17: ``nexus_backend_ejected{backend,model}`` is 1 while the quality store has a pair
ejected and 0 otherwise (recovering and ok alike), one sample per pair the store knows. A store fed
directly on a fake clock, the metrics rendered in the Prometheus text format."""

from __future__ import annotations

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import PairStatus
from nexus.config.quality import QualityConfig
from nexus.errors import Failure
from tests.observability.observed import Samples, parse
from tests.observability.test_metrics import metrics_for, registry

START = 12 * 86_400.0  # on a bucket boundary of every window


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def succeed(store: QualityStore, backend: str, model: str) -> None:
    store.record_success(backend, model, ttft_s=0.1, total_s=1.0, output_tokens=None, stream=False)


def ejected_samples(samples: Samples) -> dict[tuple[str, str], float]:
    """(backend, model) -> the value of ``nexus_backend_ejected``."""
    found = {}
    for (name, labels), value in samples.items():
        if name == "nexus_backend_ejected":
            by_name = dict(labels)
            assert set(by_name) == {"backend", "model"}
            found[by_name["backend"], by_name["model"]] = value
    return found


def test_the_ejected_gauge_is_one_only_while_a_pair_is_ejected() -> None:
    clock = Clock()
    store = QualityStore(
        QualityConfig(consecutive_failures=2, base_ejection_seconds=30), clock=clock
    )
    metrics = metrics_for(registry("a", "b"))
    metrics.watch_quality(store)
    for _ in range(2):
        store.record_failure("b", "m", Failure.SERVER_ERROR)
    clock.now += 31  # b/m's ejection is over: it is recovering
    for _ in range(2):
        store.record_failure("a", "m", Failure.TIMEOUT)
    succeed(store, "a", "n")
    states = {pair: store.state(*pair).status for pair in store.pairs()}
    assert states == {
        ("b", "m"): PairStatus.RECOVERING,
        ("a", "m"): PairStatus.EJECTED,
        ("a", "n"): PairStatus.OK,
    }

    text = metrics.exposition().decode()
    assert "# TYPE nexus_backend_ejected gauge" in text
    assert ejected_samples(parse(text)) == {("a", "m"): 1.0, ("a", "n"): 0.0, ("b", "m"): 0.0}

    clock.now += 30  # a/m's ejection has ended too
    assert ejected_samples(parse(metrics.exposition().decode())) == {
        ("a", "m"): 0.0,
        ("a", "n"): 0.0,
        ("b", "m"): 0.0,
    }


def test_no_pair_no_sample() -> None:
    metrics = metrics_for(registry("a"))
    metrics.watch_quality(QualityStore(QualityConfig(), clock=Clock()))
    text = metrics.exposition().decode()
    assert "# TYPE nexus_backend_ejected gauge" in text
    assert ejected_samples(parse(text)) == {}
