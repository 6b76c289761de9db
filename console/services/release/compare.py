"""services.release.compare: N candidates against the version in a target stage.

Each candidate gets the four-axis lineage (code, model, schema, sampling) against the stage's
version, direction-aware metric deltas, its CI outcome, and the model's metric trend across
versions. The diffs are the pure functions of :mod:`console.services.lineage`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field

from console.domain import CIRun, LiveWindow, ModelVersion, version_key
from console.domain.models import Frozen
from console.services.health import ShadowComparison, judge, read_window, shadow_comparison
from console.services.incidents import RolledBack, read_rolled_back
from console.services.lineage import Lineage, LineageService, MetricDelta
from console.services.overview import OverviewService, Section
from console.services.release.gates import ci_state
from console.services.release.results import Refused
from console.services.workspace import DATA, Workspace


class TrendPoint(Frozen):
    """One version's metrics, for the trend across versions."""

    version: str
    created_at: datetime | None = None
    stages: tuple[str, ...] = ()
    metrics: dict[str, float] = Field(default_factory=dict)


class Candidate(Frozen):
    """One candidate next to the stage's version."""

    version: str
    commit: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    ci: str = "none"
    ci_runs: tuple[CIRun, ...] = ()
    lineage: Lineage

    @property
    def metrics(self) -> tuple[MetricDelta, ...]:
        return self.lineage.model_axis.metrics

    @property
    def better(self) -> int:
        return sum(1 for m in self.metrics if m.better is True)

    @property
    def worse(self) -> int:
        return sum(1 for m in self.metrics if m.better is False)


class LiveSide(Frozen):
    """One version's live figures over the SLO window where it serves, with its verdict and,
    for a candidate beside production, the shadow comparison."""

    version: str | None
    stage: str | None = None  # None: the version serves nowhere
    figures: LiveWindow | None = None
    error: str = ""
    verdict: str = ""
    reasons: tuple[str, ...] = ()
    shadow: ShadowComparison | None = None

    def doc(self) -> dict[str, Any]:
        f = self.figures
        return {
            "version": self.version,
            "stage": self.stage,
            "requests": f.requests if f else None,
            "latency_p95_ms": f.latency_p95_ms if f else None,
            "error_rate": f.error_rate if f else None,
            "traffic_rps": f.traffic_rps if f else None,
            "covered_seconds": f.seconds if f else None,
            "verdict": self.verdict or None,
            "reasons": list(self.reasons),
            "shadow": self.shadow.doc() if self.shadow else None,
            "error": self.error or None,
        }


class Comparison(Frozen):
    """Candidates of ``model`` against ``base_version`` (what ``stage`` points at)."""

    model: str
    stage: str
    base_version: str | None
    candidates: tuple[Candidate, ...]
    trend: tuple[TrendPoint, ...] = ()
    metric_names: tuple[str, ...] = ()
    sections: dict[str, Section] = Field(default_factory=dict)
    generated_at: datetime
    live_base: LiveSide | None = None  # the stage's version, live
    live: dict[str, LiveSide] = Field(default_factory=dict)  # by candidate version
    live_window: float = 600.0
    rolled_back: dict[str, RolledBack] = Field(default_factory=dict)  # by version

    @property
    def errors(self) -> dict[str, str]:
        return {k: s.error for k, s in self.sections.items() if s.error}


async def compare(
    ws: Workspace,
    model: str,
    versions: Sequence[str],
    *,
    stage: str | None = None,
    overview: OverviewService | None = None,
    trend_limit: int = 50,
) -> Comparison:
    """Compare ``versions`` of ``model`` with the version in ``stage`` (default: production)."""
    overview = overview or OverviewService(ws)
    stage = stage or ws.config.prod_stage
    if stage not in ws.config.stages:
        raise Refused(
            f"unknown stage {stage!r}; stages are {', '.join(ws.config.stages)}", kind="usage"
        )
    view = await overview.model_view(model, with_details=False, with_health=False)
    if not view.versions:
        why = view.errors.get("registry") or f"no versions of {model!r}"
        raise Refused(why, kind="not_found")
    by_name = {v.version: v for v in view.versions}
    missing = [v for v in versions if v not in by_name]
    if missing:
        newest = ", ".join(v.version for v in view.versions[-5:])
        raise Refused(
            f"{model} has no version {', '.join(missing)} (newest: {newest})", kind="not_found"
        )
    base_name = view.stage_version(stage)
    base = by_name.get(base_name) if base_name else None
    wanted = [by_name[v] for v in dict.fromkeys(versions)]
    lineage = LineageService(overview)
    details_task = overview.version_details(model, wanted)
    lineages, details, trend = await asyncio.gather(
        asyncio.gather(*(lineage.lineage(model, v, base) for v in wanted)),
        details_task,
        _trend(overview, model, list(view.versions)[-trend_limit:] if trend_limit else []),
    )
    sections: dict[str, Section] = dict(view.sections)
    for lin in lineages:
        _merge(sections, lin.sections)
    for d in details.values():
        _merge(sections, d.sections)
    candidates = tuple(
        Candidate(
            version=v.version,
            commit=v.commit,
            created_by=v.created_by,
            created_at=v.created_at,
            ci=ci_state(details[v.version].ci) if v.version in details else "none",
            ci_runs=details[v.version].ci if v.version in details else (),
            lineage=lin,
        )
        for v, lin in zip(wanted, lineages, strict=True)
    )
    names: list[str] = []
    for c in candidates:
        names += [m.name for m in c.metrics if m.name not in names]
    serving = {a.stage: a.version for a in view.stages}
    (live_base, live), (records, _) = await asyncio.gather(
        _live(overview, model, stage, base_name, [v.version for v in wanted], serving),
        read_rolled_back(ws, model, overview.timeout, ws.config),
    )
    return Comparison(
        model=model,
        stage=stage,
        base_version=base_name,
        candidates=candidates,
        trend=tuple(trend),
        metric_names=tuple(names),
        sections=sections,
        generated_at=overview.clock(),
        live_base=live_base,
        live=live,
        live_window=ws.config.slo_for(model).window_seconds,
        rolled_back={v: r for v, r in records.items() if v in by_name},
    )


async def _live(
    overview: OverviewService,
    model: str,
    stage: str,
    base: str | None,
    versions: list[str],
    serving: dict[str, str | None],
) -> tuple[LiveSide | None, dict[str, LiveSide]]:
    """The stage's version and each candidate over the SLO window, where each serves (the
    candidate's own stage: shadow or canary traffic), judged, and compared on the same traffic."""
    ws, config = overview.ws, overview.config
    slo = config.slo_for(model)
    seconds, now = slo.window_seconds, overview.clock()
    order = [s for s in config.stages if s != stage] + [stage]

    def where(version: str | None) -> str | None:
        return next((s for s in order if version and serving.get(s) == version), None)

    async def side(version: str | None) -> LiveSide:
        at = where(version)
        if at is None:
            return LiveSide(version=version, error=f"{version or 'nothing'} serves in no stage")
        figures, error, _ = await read_window(
            ws, model, at, version=version, seconds=seconds, timeout=overview.timeout
        )
        verdict, reasons = judge(figures, slo, now, error=error)
        return LiveSide(
            version=version,
            stage=at,
            figures=figures,
            error=error,
            verdict=verdict,
            reasons=reasons,
        )

    base_side, *sides = await asyncio.gather(side(base), *(side(v) for v in versions))
    out: dict[str, LiveSide] = {}
    for s in sides:
        if s.figures is not None and s.stage != stage:
            s = s.model_copy(update={"shadow": shadow_comparison(s.figures, base_side.figures)})
        out[s.version or ""] = s
    return (base_side if base else None), out


def _merge(into: dict[str, Section], more: dict[str, Section]) -> None:
    for kind, sec in more.items():
        if not sec.ok and into.get(kind, Section(name=kind)).ok:
            into[kind] = sec
        else:
            into.setdefault(kind, sec)


async def _trend(
    overview: OverviewService, model: str, versions: list[ModelVersion]
) -> list[TrendPoint]:
    """Metrics of ``versions`` (oldest first), read concurrently; unreadable ones are empty."""
    sections: dict[str, Section] = {}
    empty: dict[str, float] = {}

    async def one(v: ModelVersion) -> TrendPoint:
        got: dict[str, Any] = {}
        if v.commit:
            got = await overview._call(
                DATA,
                ("metrics", model, v.commit),
                lambda d: d.metrics(model, v.commit),
                sections,
                empty,
            )
        return TrendPoint(
            version=v.version,
            created_at=v.created_at,
            stages=v.stages,
            metrics={**v.metrics, **got},
        )

    ordered = sorted(versions, key=lambda v: version_key(v.version))
    return list(await asyncio.gather(*(one(v) for v in ordered)))


def comparison_doc(c: Comparison) -> dict[str, Any]:
    """A comparison as JSON-ready data (docs/release.md: compare --json)."""

    def delta(m: MetricDelta) -> dict[str, Any]:
        return {
            "name": m.name,
            "value": m.value,
            "base": m.base,
            "delta": m.delta,
            "direction": m.direction,
            "better": m.better,
        }

    out = []
    for cand in c.candidates:
        lin = cand.lineage
        code = lin.code
        schema = lin.schema_axis
        sampling = lin.sampling
        out.append(
            {
                "version": cand.version,
                "commit": cand.commit or None,
                "created_by": cand.created_by or None,
                "created_at": cand.created_at.isoformat() if cand.created_at else None,
                "ci": cand.ci,
                "metrics": [delta(m) for m in cand.metrics],
                "better": cand.better,
                "worse": cand.worse,
                "code": None
                if code is None
                else {
                    "base_commit": code.base_commit,
                    "head_commit": code.head_commit,
                    "commits": [
                        {"sha": x.sha, "author": x.author, "subject": x.subject}
                        for x in code.commits
                    ],
                    "authors": list(code.authors),
                    "truncated": code.truncated,
                    "diffstat": code.diffstat.model_dump() if code.diffstat else None,
                    "behind": [
                        {"sha": x.sha, "author": x.author, "subject": x.subject}
                        for x in code.behind
                    ],
                },
                "params": [p.model_dump(mode="json") for p in lin.model_axis.params],
                "schema": None
                if schema is None
                else {
                    "declared": schema.declared,
                    "changes": [f.model_dump(mode="json") for f in schema.changes],
                },
                "sampling": None
                if sampling is None
                else {
                    "changed": sampling.changed,
                    "base_digest": sampling.base_digest,
                    "head_digest": sampling.head_digest,
                    "size_before": sampling.size_before,
                    "size_after": sampling.size_after,
                    "rows_before": sampling.rows_before,
                    "rows_after": sampling.rows_after,
                    "outputs": [o.model_dump(mode="json") for o in sampling.outputs],
                },
            }
        )
    for entry in out:
        version = str(entry["version"])
        side, back = c.live.get(version), c.rolled_back.get(version)
        entry["live"] = side.doc() if side is not None else None
        entry["rolled_back"] = back.doc() if back is not None else None
    return {
        "schema": "cd4ml-console/compare/v1",
        "model": c.model,
        "stage": c.stage,
        "base_version": c.base_version,
        "generated_at": c.generated_at.isoformat(),
        "metric_names": list(c.metric_names),
        "live_window_seconds": c.live_window,
        "live_base": c.live_base.doc() if c.live_base is not None else None,
        "candidates": out,
        "trend": [
            {
                "version": t.version,
                "stages": list(t.stages),
                "metrics": t.metrics,
                "created_at": t.created_at.isoformat() if t.created_at else None,
            }
            for t in c.trend
        ],
        "errors": c.errors,
    }
