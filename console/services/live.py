"""services.live: live serving metrics of a model's stage (series for charts, trend sparks).

Calls go through OverviewService's plumbing, so a failing metrics source yields a section with
the reason and the last good series (and its age) instead of an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime

from pydantic import Field

from console.domain import MetricSeries, ServingHealth
from console.domain.models import Frozen
from console.ports import MetricsSource
from console.services.overview import OverviewService, Section
from console.services.workspace import METRICS

LIVE_METRICS = ("latency_p95_ms", "error_rate", "traffic_rps", "prediction_mean")
"""The metrics the MetricsSource port serves, in the order the console shows them."""

METRIC_LABELS = {
    "latency_p95_ms": ("latency p95", "ms"),
    "error_rate": ("error rate", "%"),
    "traffic_rps": ("traffic", "req/s"),
    "prediction_mean": ("prediction score", ""),
}


class LiveView(Frozen):
    """Live metrics of one model's stage: the health snapshot and a series per metric."""

    model: str
    stage: str
    only_version: str | None = None  # the series are of this version only
    health: ServingHealth | None = None
    series: dict[str, MetricSeries] = Field(default_factory=dict)
    section: Section
    fetched_at: datetime | None = None

    @property
    def version(self) -> str | None:
        return self.only_version or (self.health.version if self.health else None)


class LiveService:
    """Reads live metrics through the MetricsSource port with stale-if-error sections."""

    def __init__(self, overview: OverviewService) -> None:
        self.overview = overview
        self.config = overview.config

    async def live(
        self,
        model: str,
        stage: str | None = None,
        *,
        metrics: Sequence[str] = LIVE_METRICS,
        points: int = 60,
        with_health: bool = True,
        version: str | None = None,
    ) -> LiveView:
        """Health plus one series per metric of ``model`` in ``stage`` (default: production);
        with ``version`` the series of that version only."""
        stage = stage or self.config.prod_stage
        sections: dict[str, Section] = {}
        call = self.overview._call

        def read(m: MetricsSource, metric: str) -> Awaitable[MetricSeries]:
            if version:  # passed only when set: plugins without it still answer
                return m.series(model, stage, metric, points=points, version=version)
            return m.series(model, stage, metric, points=points)

        async def one(metric: str) -> MetricSeries | None:
            return await call(
                METRICS,
                ("series", model, stage, metric, points, version),
                lambda m: read(m, metric),
                sections,
                None,
            )

        async def health() -> ServingHealth | None:
            if not with_health:
                return None
            return await call(
                METRICS,
                ("health", model, stage),
                lambda m: m.health(model, stage),
                sections,
                None,
            )

        health_value, *values = await asyncio.gather(health(), *(one(m) for m in metrics))
        series = {m: s for m, s in zip(metrics, values, strict=True) if s is not None}
        return LiveView(
            model=model,
            stage=stage,
            only_version=version,
            health=health_value,
            series=series,
            section=sections.get("metrics", Section(name="metrics")),
            fetched_at=self.overview.clock(),
        )

    async def trend(
        self,
        model: str,
        metric: str = "latency_p95_ms",
        stage: str | None = None,
        *,
        points: int = 20,
    ) -> tuple[MetricSeries | None, Section]:
        """A short series for an overview spark."""
        view = await self.live(model, stage, metrics=(metric,), points=points, with_health=False)
        return view.series.get(metric), view.section
