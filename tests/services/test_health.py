"""services.health: verdicts at each threshold edge (table-driven), "unknown" with too little
traffic, stale figures, no SLO and metrics down; the shadow comparison (PSI, KS, agreement)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from console.config import ConsoleConfig
from console.config.model import SLO, SLOConfig
from console.domain import LiveWindow, ShadowFigures
from console.ports import NotFound, Unreachable
from console.services.health import (
    HealthService,
    judge,
    ks,
    psi,
    shadow_comparison,
    worst,
)
from console.services.overview import OverviewService
from console.services.workspace import Workspace

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
SLO_500 = SLO(p95_ms=500, error_rate=0.02, min_requests=100, window="10m", degraded_at=0.8)


def figures(
    p95: float | None = 100.0,
    errors: float = 0.0,
    requests: float = 1000.0,
    *,
    seconds: float = 600.0,
    age: float = 0.0,
) -> LiveWindow:
    return LiveWindow(
        model="m", stage="production", version="v1", seconds=seconds, requests=requests,
        errors=errors, latency_p95_ms=p95, observed_at=NOW - timedelta(seconds=age),
    )  # fmt: skip


VERDICTS = [
    # p95 ms, errors of 1000, requests -> verdict, first reason
    (100.0, 0, 1000, "ok", "p95 100 ms ≤ 500 ms"),
    (400.0, 0, 1000, "ok", "p95 400 ms ≤ 500 ms"),  # exactly 80 %: still ok
    (400.5, 0, 1000, "degraded", "p95 400 ms > 400 ms (80% of 500 ms)"),
    (500.0, 0, 1000, "degraded", "p95 500 ms > 400 ms (80% of 500 ms)"),  # at the limit
    (500.5, 0, 1000, "breach", "p95 500 ms > 500 ms"),
    (1675.0, 0, 1000, "breach", "p95 1.7 s > 500 ms"),
    (100.0, 16, 1000, "ok", "p95 100 ms ≤ 500 ms"),  # 1.6 %: exactly 80 % of 2 %
    (100.0, 17, 1000, "degraded", "errors 1.7% > 1.6% (80% of 2.0%)"),
    (100.0, 20, 1000, "degraded", "errors 2.0% > 1.6% (80% of 2.0%)"),  # at the limit
    (100.0, 21, 1000, "breach", "errors 2.1% > 2.0%"),
    (1675.0, 180, 1000, "breach", "p95 1.7 s > 500 ms"),
    (100.0, 0, 100, "ok", "p95 100 ms ≤ 500 ms"),  # exactly the minimum traffic
    (100.0, 0, 99, "unknown", "only 99 requests in 10 min (< 100)"),
    (9000.0, 99, 99, "unknown", "only 99 requests in 10 min (< 100)"),  # too thin to call
    (None, 0, 1000, "unknown", "no p95 figures (1,000 requests in 10 min)"),
]


@pytest.mark.parametrize(("p95", "errors", "requests", "verdict", "reason"), VERDICTS)
def test_verdict_at_each_threshold_edge(
    p95: float | None, errors: float, requests: float, verdict: str, reason: str
) -> None:
    got, reasons = judge(figures(p95, errors, requests), SLO_500, NOW)
    assert (got, reasons[0]) == (verdict, reason)
    if verdict in ("ok", "degraded", "breach"):
        assert reasons[-1] == f"{requests:,} requests in 10 min"


def test_a_breach_names_every_figure_over_its_limit() -> None:
    verdict, reasons = judge(figures(1675.0, 180), SLO_500, NOW)
    assert verdict == "breach"
    assert reasons == ("p95 1.7 s > 500 ms", "errors 18.0% > 2.0%", "1,000 requests in 10 min")


@pytest.mark.parametrize(
    ("fig", "slo", "error", "reason"),
    [
        (figures(), SLO(None, None, 100, "10m", 0.8), "", "no SLO configured"),
        (None, SLO_500, "scrape: could not connect to 127.0.0.1:9", "metrics down: scrape:"),
        (None, SLO_500, "", "no live figures"),
        (figures(age=601), SLO_500, "", "last reading 10 min ago (window 10 min)"),
        (figures(seconds=0, requests=0), SLO_500, "", "one reading so far"),
    ],
)
def test_unknown_says_why(fig, slo: SLO, error: str, reason: str) -> None:
    verdict, reasons = judge(fig, slo, NOW, error=error)
    assert verdict == "unknown" and reasons[0].startswith(reason), reasons


def test_slo_of_a_model_over_the_workspace_defaults() -> None:
    config = ConsoleConfig.model_validate(
        {"slo": {"p95_ms": 250, "error_rate": 0.02}, "models": {"m": {"slo": {"p95_ms": 100}}}}
    )
    assert config.slo_for("m") == SLO(100.0, 0.02, 100, "10m", 0.8)
    assert config.slo_for("other") == SLO(250.0, 0.02, 100, "10m", 0.8)
    assert SLOConfig(window="1h30m").resolved().window_seconds == 5400


def hist(*counts: float) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets at 0.25, 0.5, 0.75, 1.0 from counts per bucket."""
    out, total = [], 0.0
    for bound, n in zip((0.25, 0.5, 0.75, 1.0), counts, strict=True):
        total += n
        out.append((bound, total))
    return tuple(out)


def test_psi_and_ks_of_histograms() -> None:
    assert psi([25, 25, 25, 25], [25, 25, 25, 25]) == 0.0
    assert ks([25, 25, 25, 25], [25, 25, 25, 25]) == 0.0
    shifted = psi([40, 30, 20, 10], [10, 20, 30, 40])
    assert shifted == pytest.approx(2 * (0.3 * 1.3863 + 0.1 * 0.4055), rel=1e-3)
    assert ks([40, 30, 20, 10], [10, 20, 30, 40]) == pytest.approx(0.4)
    assert math.isfinite(psi([100, 0], [50, 50]))  # an empty bucket is floored


def test_shadow_comparison_on_the_same_traffic() -> None:
    base = LiveWindow(model="m", stage="production", version="v1", scores=hist(40, 30, 20, 10))
    cand = LiveWindow(
        model="m", stage="staging", version="v2", seconds=600, scores=hist(10, 20, 30, 40),
        shadow=ShadowFigures(baseline_version="v1", compared=1000, differ=150),
    )  # fmt: skip
    c = shadow_comparison(cand, base)
    assert (c.compared, c.differ, c.disagreement) == (1000, 150, 0.15)
    assert c.baseline_version == "v1" and c.candidate_scores == c.baseline_scores == 100
    assert c.psi == pytest.approx(psi([40, 30, 20, 10], [10, 20, 30, 40]))
    assert c.ks == pytest.approx(0.4)
    alone = shadow_comparison(cand, None)
    assert alone.psi is None and alone.disagreement == 0.15


class WindowMetrics:
    """A metrics backend with ``window``: figures per (stage, version), or a failure."""

    name = "fake-metrics"

    def __init__(self, table: dict[tuple[str, str | None], LiveWindow]) -> None:
        self.table = table
        self.error: Exception | None = None
        self.asked: list[tuple[str, str, str | None, float]] = []

    async def window(self, model, stage, *, version=None, seconds=600.0):
        self.asked.append((model, stage, version, seconds))
        if self.error is not None:
            raise self.error
        found = self.table.get((stage, version)) or self.table.get((stage, None))
        if found is None:
            raise NotFound(f"no series for {model} in {stage}", backend=self.name)
        return found

    async def aclose(self) -> None:
        pass


def service(metrics: object | None, **slo: float) -> HealthService:
    config = ConsoleConfig.model_validate({"slo": {"p95_ms": 500, "error_rate": 0.02, **slo}})
    backends = {"metrics": metrics} if metrics is not None else {}
    return HealthService(OverviewService(Workspace(config=config, backends=backends), clock=lambda: NOW))  # fmt: skip


async def test_verdicts_per_stage_judge_the_version_each_stage_holds() -> None:
    metrics = WindowMetrics(
        {("production", "v1"): figures(), ("staging", "v2"): figures(1675.0, 180)}
    )
    got = await service(metrics).model("m", {"staging": "v2", "production": "v1"})
    assert [(h.stage, h.version, h.verdict) for h in got] == [
        ("staging", "v2", "breach"),
        ("production", "v1", "ok"),
    ]
    assert {(a[1], a[2], a[3]) for a in metrics.asked} == {
        ("staging", "v2", 600.0),
        ("production", "v1", 600.0),
    }
    assert worst(got).stage == "staging"
    doc = got[0].doc()
    assert doc["verdict"] == "breach" and doc["requests"] == 1000 and doc["error_rate"] == 0.18


async def test_a_stage_without_live_data_is_not_judged_but_production_is() -> None:
    metrics = WindowMetrics({})
    got = await service(metrics).model("m", {"staging": "v2", "production": "v1"})
    assert [(h.stage, h.verdict) for h in got] == [("production", "unknown")]
    assert "no series for m in production" in got[0].reasons[0]


async def test_unknown_when_metrics_are_down_or_cannot_window() -> None:
    metrics = WindowMetrics({("production", None): figures()})
    metrics.error = Unreachable("could not connect to 127.0.0.1:9", backend="scrape")
    down = await service(metrics).stage("m", "production")
    assert down.verdict == "unknown" and down.reasons == (
        "metrics down: scrape: could not connect to 127.0.0.1:9",
    )
    assert down.figures is None  # never a verdict on the last good figures

    class Old:
        name = "old-plugin"

    old = await service(Old()).stage("m", "production")
    assert (
        old.verdict == "unknown"
        and "old-plugin metrics backend reports no figures" in (old.reasons[0])
    )
    none = await service(None).stage("m", "production")
    assert none.reasons == ("metrics down: no metrics backend is configured",)


async def test_too_little_traffic_is_unknown_not_ok() -> None:
    metrics = WindowMetrics({("production", None): figures(requests=12)})
    h = await service(metrics, min_requests=50).stage("m", "production")
    assert h.verdict == "unknown" and h.reasons == ("only 12 requests in 10 min (< 50)",)
