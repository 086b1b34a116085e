"""``[quality]``: how real requests' error rate and time to first token steer routing. The
three Rust Nexus keys keep their meaning; the others are Nexus's own. The defaults change nothing
for a fleet without failures whose mean time to first token stays under
``ttft_penalty_threshold_ms``. What each knob does: :mod:`nexus.backends.quality`.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The width of the finest bucket: ``window_seconds`` is a whole number of them.
BUCKET_SECONDS = 10


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Eject a backend's model at this error rate or above."
    )
    ttft_penalty_threshold_ms: float = Field(
        3000.0,
        gt=0,
        le=3_600_000,
        description="A mean time to first token above it lowers "
        "the smart score (to 0 at twice the threshold).",
    )
    metrics_interval_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often idle figures are recomputed for routing, gauges and other replicas.",
    )
    window_seconds: int = Field(
        300, ge=BUCKET_SECONDS, le=300, description="The window routing reads (whole 10 s)."
    )
    consecutive_failures: int = Field(
        5, ge=1, le=10_000, description="Errors in a row that eject a backend's model."
    )
    min_requests: int = Field(
        10, ge=1, le=1_000_000, description="Attempts in the window before its error rate counts."
    )
    base_ejection_seconds: float = Field(
        30.0, gt=0, le=86400, description="The first ejection's length; doubles each time."
    )
    max_ejection_seconds: float = Field(600.0, gt=0, le=86400, description="The longest ejection.")
    probe_share: float = Field(
        0.1, ge=0, le=1, description="Share of traffic a recovering model gets."
    )
    recovery_successes: int = Field(
        3, ge=1, le=10_000, description="Successes in a row that end a recovery."
    )
    max_pairs: int = Field(
        2_000, ge=1, le=1_000_000, description="(backend, model) pairs remembered, ~9 KB each."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = []
        if self.window_seconds % BUCKET_SECONDS:
            problems.append(
                f"window_seconds: {self.window_seconds} is not a multiple of {BUCKET_SECONDS}"
            )
        if self.max_ejection_seconds < self.base_ejection_seconds:
            problems.append(
                f"max_ejection_seconds: {self.max_ejection_seconds:g} is below "
                f"base_ejection_seconds ({self.base_ejection_seconds:g})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self
