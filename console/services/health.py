"""services.health: a verdict per stage — ok, degraded, breach or unknown — with the reason in
numbers, from live figures over the SLO window; and the shadow comparison of a candidate with
the version it shadows (decision agreement, score distribution shift).

``judge`` and ``shadow_comparison`` are pure functions of figures, the SLO and the time. The
HealthService reads the figures through the metrics port: never the last good value of a
failed read (a verdict on old figures would be a guess), always "unknown" and why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.config.model import SLO
from console.domain import LiveWindow
from console.domain.models import Frozen
from console.ports import NotFound
from console.services.overview import OverviewService, describe_error

if TYPE_CHECKING:
    from console.services.workspace import Workspace

OK, DEGRADED, BREACH, UNKNOWN = "ok", "degraded", "breach", "unknown"
VERDICTS = (OK, DEGRADED, BREACH, UNKNOWN)
SEVERITY = {OK: 0, UNKNOWN: 1, DEGRADED: 2, BREACH: 3}
NO_SLO = "no SLO configured (set p95_ms or error_rate in [slo] or [models.NAME.slo])"


# -- numbers in words ----------------------------------------------------------------------


def ms_text(ms: float) -> str:
    """'41 ms', '1.7 s'."""
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def rate_text(rate: float) -> str:
    """'18.0%', '0.30%'."""
    pct = rate * 100
    return f"{pct:.1f}%" if pct >= 1 or pct == 0 else f"{pct:.2f}%"


def span_text(seconds: float) -> str:
    """'90 s', '10 min', '1 h 5 min'."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    hours, minutes = divmod(s // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def count_text(n: float) -> str:
    return f"{round(n):,}"


# -- the verdict ---------------------------------------------------------------------------


def judge(
    figures: LiveWindow | None, slo: SLO, now: datetime, *, error: str = ""
) -> tuple[str, tuple[str, ...]]:
    """(verdict, reasons): ``breach`` when a figure is over its limit, ``degraded`` when over
    ``degraded_at`` of it, ``ok`` otherwise; ``unknown`` without an SLO, without figures
    (``error`` says why), with figures older than the window, or with fewer requests than
    ``min_requests``. A figure equal to its limit is within it."""
    if not slo.configured:
        return UNKNOWN, (NO_SLO,)
    if error or figures is None:
        return UNKNOWN, (f"metrics down: {error}" if error else "no live figures",)
    window = slo.window_seconds
    if figures.observed_at is not None and (now - figures.observed_at).total_seconds() > window:
        age = span_text((now - figures.observed_at).total_seconds())
        return UNKNOWN, (f"last reading {age} ago (window {span_text(window)})",)
    if figures.seconds == 0:
        return UNKNOWN, ("one reading so far: no figures over a window yet",)
    requests = figures.requests or 0.0
    traffic = f"{count_text(requests)} requests in {span_text(figures.seconds or window)}"
    if requests < slo.min_requests:
        return UNKNOWN, (f"only {traffic} (< {slo.min_requests:,})",)
    checks: list[tuple[str, float | None, float, Callable[[float], str]]] = []
    if slo.p95_ms is not None:
        checks.append(("p95", figures.latency_p95_ms, slo.p95_ms, ms_text))
    if slo.error_rate is not None:
        checks.append(("errors", figures.error_rate, slo.error_rate, rate_text))
    missing = [label for label, value, _, _ in checks if value is None]
    if missing:
        return UNKNOWN, (f"no {' or '.join(missing)} figures ({traffic})",)
    over, warn, within = [], [], []
    for label, value, limit, text in checks:
        assert value is not None
        if value > limit:
            over.append(f"{label} {text(value)} > {text(limit)}")
        elif value > limit * slo.degraded_at:
            share = f"{slo.degraded_at:.0%} of {text(limit)}"
            warn.append(f"{label} {text(value)} > {text(limit * slo.degraded_at)} ({share})")
        else:
            within.append(f"{label} {text(value)} ≤ {text(limit)}")
    if over:
        return BREACH, (*over, *warn, traffic)
    if warn:
        return DEGRADED, (*warn, *within, traffic)
    return OK, (*within, traffic)


class StageHealth(Frozen):
    """The verdict of one stage (of one version in it, when ``version`` was asked for)."""

    model: str
    stage: str
    version: str | None = None
    verdict: str = UNKNOWN
    reasons: tuple[str, ...] = ()
    window_seconds: float = 600.0
    figures: LiveWindow | None = None
    error: str = ""  # the metrics backend failed or has no figures for the stage
    checked_at: datetime | None = None

    @property
    def summary(self) -> str:
        """'breach: p95 1.7 s > 500 ms; errors 18.0% > 2.0%'."""
        keep = self.reasons if self.verdict != BREACH else self.reasons[:-1] or self.reasons
        return f"{self.verdict}: {'; '.join(keep)}"

    def doc(self) -> dict[str, Any]:
        """JSON-ready (``status --json``'s health, ``health --json``)."""
        f = self.figures
        return {
            "stage": self.stage,
            "version": self.version or (f.version if f else None),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "window_seconds": self.window_seconds,
            "requests": f.requests if f else None,
            "errors": f.errors if f else None,
            "latency_p95_ms": f.latency_p95_ms if f else None,
            "error_rate": f.error_rate if f else None,
            "covered_seconds": f.seconds if f else None,
            "observed_at": f.observed_at.isoformat() if f and f.observed_at else None,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


def worst(healths: Sequence[StageHealth]) -> StageHealth | None:
    """The most severe verdict (breach, degraded, unknown, ok), the first on a tie."""
    return max(healths, key=lambda h: SEVERITY[h.verdict], default=None)


# -- shadow comparison ---------------------------------------------------------------------


def _bucket_counts(
    cumulative: Sequence[tuple[float, float]], bounds: Sequence[float]
) -> list[float]:
    """Counts per bucket ending at each of ``bounds`` (which the histogram has)."""
    at = dict(cumulative)
    out, below = [], 0.0
    for bound in bounds:
        total = at[bound]
        out.append(max(0.0, total - below))
        below = total
    return out


def _shared(a: LiveWindow, b: LiveWindow) -> tuple[list[float], list[float]] | None:
    """Both score histograms over the bounds they share; None when one is empty."""
    bounds = sorted({x for x, _ in a.scores} & {x for x, _ in b.scores})
    if not bounds:
        return None
    pa, pb = _bucket_counts(a.scores, bounds), _bucket_counts(b.scores, bounds)
    if sum(pa) <= 0 or sum(pb) <= 0:
        return None
    return pa, pb


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = 1e-4) -> float:
    """Population stability index of two histograms over the same buckets (shares are floored
    so an empty bucket does not make it infinite). Rule of thumb: < 0.1 stable, > 0.25 shifted."""
    te, ta = sum(expected), sum(actual)
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / te, floor), max(a / ta, floor)
        total += (pa - pe) * math.log(pa / pe)
    return total


def ks(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Largest gap between the two cumulative distributions at the bucket bounds."""
    te, ta = sum(expected), sum(actual)
    ce = ca = gap = 0.0
    for e, a in zip(expected, actual, strict=True):
        ce, ca = ce + e / te, ca + a / ta
        gap = max(gap, abs(ce - ca))
    return gap


class ShadowComparison(Frozen):
    """A candidate against the version it shadows, over the same window."""

    stage: str
    version: str | None = None
    baseline_stage: str
    baseline_version: str | None = None
    seconds: float | None = None
    compared: float = 0.0  # requests both answered
    differ: float = 0.0  # of which the decision differs
    candidate_scores: float = 0.0
    baseline_scores: float = 0.0
    psi: float | None = None
    ks: float | None = None

    @property
    def disagreement(self) -> float | None:
        return self.differ / self.compared if self.compared > 0 else None

    def doc(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "disagreement": self.disagreement}


def shadow_comparison(candidate: LiveWindow, baseline: LiveWindow | None) -> ShadowComparison:
    """Decision agreement (from the candidate's shadow counts) and the shift of its score
    distribution against the baseline's (PSI and KS over the shared buckets)."""
    shadow = candidate.shadow
    shared = _shared(baseline, candidate) if baseline is not None else None
    return ShadowComparison(
        stage=candidate.stage,
        version=candidate.version,
        baseline_stage=baseline.stage if baseline is not None else "",
        baseline_version=(shadow.baseline_version if shadow else None)
        or (baseline.version if baseline is not None else None),
        seconds=candidate.seconds,
        compared=shadow.compared if shadow else 0.0,
        differ=shadow.differ if shadow else 0.0,
        candidate_scores=sum(shared[1]) if shared else 0.0,
        baseline_scores=sum(shared[0]) if shared else 0.0,
        psi=psi(*shared) if shared else None,
        ks=ks(*shared) if shared else None,
    )


# -- reading -------------------------------------------------------------------------------


async def read_window(
    ws: Workspace, model: str, stage: str, *, version: str | None, seconds: float, timeout: float
) -> tuple[LiveWindow | None, str, bool]:
    """(figures of ``stage`` over ``seconds``, why there are none, whether the backend has no
    data for the stage). Any failure is a reason in words, never an exception."""
    backend = ws.metrics
    if backend is None:
        problem = ws.problems.get("metrics")
        return None, problem or "no metrics backend is configured", False
    read = getattr(backend, "window", None)
    if read is None:
        name = getattr(backend, "name", "metrics")
        return None, f"the {name} metrics backend reports no figures over a window", False
    try:
        async with asyncio.timeout(timeout):
            return await read(model, stage, version=version, seconds=seconds), "", False
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        message, _ = describe_error(exc, "metrics", timeout, getattr(ws, "config", None))
        return None, message, isinstance(exc, NotFound)


class HealthService:
    """Verdicts per stage through the metrics port's ``window``; one call per stage."""

    def __init__(self, overview: OverviewService) -> None:
        self.overview = overview
        self.ws = overview.ws
        self.config = overview.config
        self.clock = overview.clock
        self.timeout = overview.timeout

    async def figures(
        self, model: str, stage: str, *, version: str | None = None, seconds: float = 600.0
    ) -> tuple[LiveWindow | None, str, bool]:
        """(figures, why there are none, whether the backend has no data for the stage)."""
        return await read_window(
            self.ws, model, stage, version=version, seconds=seconds, timeout=self.timeout
        )

    async def stage(
        self,
        model: str,
        stage: str,
        *,
        version: str | None = None,
        seconds: float | None = None,
    ) -> StageHealth:
        """The verdict of ``stage`` (only ``version``'s requests, when given)."""
        slo = self.config.slo_for(model)
        window = seconds or slo.window_seconds
        figures, error, _ = await self.figures(model, stage, version=version, seconds=window)
        return self._judged(model, stage, version, slo, window, figures, error)

    def _judged(
        self,
        model: str,
        stage: str,
        version: str | None,
        slo: SLO,
        window: float,
        figures: LiveWindow | None,
        error: str,
    ) -> StageHealth:
        now = self.clock()
        verdict, reasons = judge(figures, slo, now, error=error)
        return StageHealth(
            model=model,
            stage=stage,
            version=version or (figures.version if figures else None),
            verdict=verdict,
            reasons=reasons,
            window_seconds=window,
            figures=figures,
            error=error,
            checked_at=now,
        )

    async def model(
        self, model: str, serving: Mapping[str, str | None], *, stages: Sequence[str] = ()
    ) -> list[StageHealth]:
        """Verdicts of ``model``'s stages (``serving``: stage -> version), in config order.
        Production, when it holds a version, always gets one; another stage only when the
        metrics backend has figures for it (a stage nobody sends traffic to is not judged)."""
        prod = self.config.prod_stage
        wanted = [s for s in (stages or self.config.stages) if serving.get(s)]
        slo = self.config.slo_for(model)
        window = slo.window_seconds
        reads = await asyncio.gather(
            *(self.figures(model, s, version=serving[s], seconds=window) for s in wanted)
        )
        out = []
        for stage, (figures, error, missing) in zip(wanted, reads, strict=True):
            if missing and stage != prod and not stages:
                continue
            out.append(self._judged(model, stage, serving[stage], slo, window, figures, error))
        return out

    async def shadow(
        self, model: str, stage: str, version: str | None, *, seconds: float | None = None
    ) -> tuple[ShadowComparison | None, str]:
        """``version`` in ``stage`` against production over the window: (comparison, why not)."""
        prod = self.config.prod_stage
        window = seconds or self.config.slo_for(model).window_seconds
        (cand, c_err, _), (base, b_err, _) = await asyncio.gather(
            self.figures(model, stage, version=version, seconds=window),
            self.figures(model, prod, seconds=window),
        )
        if cand is None:
            return None, c_err
        comparison = shadow_comparison(cand, base)
        return comparison, b_err
