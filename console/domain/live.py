"""Live figures over a window: what a stage (or one version in it) served, as counts.

Rates and quantiles "now" (ServingHealth) move with every scrape; a verdict or a gate needs
figures over a stated window with the number of requests behind them.
"""

from __future__ import annotations

from datetime import datetime

from console.domain.models import Frozen


class ShadowFigures(Frozen):
    """Mirrored requests a candidate answered beside the baseline: how often it decided
    otherwise (its score on the other side of the decision threshold)."""

    baseline_version: str | None = None
    compared: float = 0.0
    differ: float = 0.0

    @property
    def disagreement(self) -> float | None:
        """Share of compared requests whose decision differs; None when none were compared."""
        return self.differ / self.compared if self.compared > 0 else None


class LiveWindow(Frozen):
    """What ``stage`` of ``model`` served over the last ``seconds`` (``version`` only, when
    given): request and error counts, p95 latency, the score histogram and shadow figures."""

    model: str
    stage: str
    version: str | None = None
    seconds: float | None = None  # the span the counts cover (may be shorter than asked)
    requests: float | None = None
    errors: float | None = None
    latency_p95_ms: float | None = None
    # Cumulative histogram of the prediction scores: (upper bound, count), ascending bounds.
    scores: tuple[tuple[float, float], ...] = ()
    shadow: ShadowFigures | None = None
    observed_at: datetime | None = None

    @property
    def error_rate(self) -> float | None:
        if self.requests is None or self.errors is None or self.requests <= 0:
            return None
        return self.errors / self.requests

    @property
    def traffic_rps(self) -> float | None:
        if self.requests is None or not self.seconds:
            return None
        return self.requests / self.seconds
