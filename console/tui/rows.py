"""What one row of the overview and of the versions table says, built from service results.

Pure functions: a ModelView (and friends) in, plain values and Rich cells out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text

from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.columns import KEEP, ranked
from console.tui.widgets.vtable import Cell, Column

if TYPE_CHECKING:
    from collections.abc import Callable

    from console.config import MetricSpec
    from console.domain import MetricSeries, ModelVersion, ServingHealth
    from console.services.health import StageHealth
    from console.services.incidents import RolledBack
    from console.services.overview import ModelView, Section, VersionDetail

    Specs = Callable[[str], MetricSpec]

UNKNOWN_APPROVALS = -1  # the audit log could not be read: whether requests wait is unknown

# -- overview ---------------------------------------------------------------------------------


def _c(text: str, style: Style | str | None = None) -> Cell:
    """A single-style cell (the table's fast path)."""
    return (text, style or None)


@dataclass(frozen=True, slots=True)
class Problem:
    """A backend kind that failed for this row, and how old its last good data is."""

    kind: str
    message: str
    label: str
    last_good: datetime | None


@dataclass(frozen=True, slots=True)
class OverviewRow:
    """Everything the overview shows about one model (small: one per model, 1,000s of them)."""

    name: str
    description: str = ""
    loaded: bool = False
    production: str | None = None
    production_since: datetime | None = None
    production_by: str = ""
    staging: str | None = None
    staging_name: str = ""
    waiting: int = 0
    newest: str | None = None
    ci: str = ""
    p95: float | None = None
    error_rate: float | None = None
    traffic: float | None = None
    trend: tuple[float, ...] = ()
    approvals: int | None = None  # requests awaiting approval; UNKNOWN_APPROVALS: log unreadable
    versions: int = 0
    problems: tuple[Problem, ...] = ()
    unconfigured: tuple[str, ...] = ()
    deprecated: bool = False
    health: tuple[StageVerdict, ...] = ()  # per judged stage, production last
    prod_stage: str = "production"
    slo: bool = True  # False: no SLO configured for the model (nothing to judge)
    rolled_back: tuple[str, ...] = ()  # versions in a stage that were once rolled back
    incidents: tuple[str, ...] = ()  # "v1.3.0 rolled back from production … by erin: why"

    def verdict_of(self, stage: str) -> StageVerdict | None:
        return next((h for h in self.health if h.stage == stage), None)


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """A stage's health verdict as the overview shows it."""

    stage: str
    version: str | None
    verdict: str
    reasons: tuple[str, ...] = ()


DEPRECATED_MARK = "\u2020"  # †: retired in the registry (gto's @deprecated)


def summarize(
    view: ModelView,
    prod_stage: str,
    stages: Sequence[str],
    *,
    newest_detail: VersionDetail | None = None,
    trend: MetricSeries | None = None,
    sections: Mapping[str, Section] | None = None,
) -> OverviewRow:
    """An overview row from a ModelView, the newest candidate's detail and a trend series."""
    prod = view.assignment(prod_stage)
    before = [s for s in stages if s != prod_stage]
    pre_stage = before[-1] if before else ""
    merged = dict(view.sections)
    for kind, sec in (sections or {}).items():
        if kind not in merged or (merged[kind].ok and not sec.ok):
            merged[kind] = sec
    if newest_detail is not None:
        for kind, sec in newest_detail.sections.items():
            if kind not in merged or (merged[kind].ok and not sec.ok):
                merged[kind] = sec
    problems = tuple(
        Problem(kind=k, message=s.error, label=s.kind, last_good=s.fetched_at)
        for k, s in sorted(merged.items())
        if s.error
    )
    unconfigured = tuple(sorted(k for k, s in merged.items() if not s.configured))
    health = view.health
    return OverviewRow(
        name=view.model.name,
        description=view.model.description,
        loaded=True,
        production=prod.version if prod else None,
        production_since=prod.assigned_at if prod else None,
        production_by=prod.assigned_by if prod else "",
        staging=view.stage_version(pre_stage) if pre_stage else None,
        staging_name=pre_stage,
        waiting=len(view.candidates),
        newest=view.candidates[-1] if view.candidates else None,
        ci=fmt.ci_state(newest_detail)
        if newest_detail is not None
        else ("pending" if view.candidates else "none"),
        p95=health.latency_p95_ms if health else None,
        error_rate=health.error_rate if health else None,
        traffic=health.traffic_rps if health else None,
        trend=tuple(p.value for p in trend.points) if trend is not None else (),
        versions=sum(1 for v in view.versions if not v.deregistered),  # as gto counts
        problems=problems,
        unconfigured=unconfigured,
        deprecated=view.model.deprecated,
    )


def with_live(
    row: OverviewRow,
    health: ServingHealth | None,
    health_section: Section,
    trend: MetricSeries | None,
    trend_section: Section,
) -> OverviewRow:
    """``row`` with fresh live health and trend (and its metrics problem, if any, updated)."""
    failing = next((s for s in (health_section, trend_section) if s.error), None)
    return replace(
        row,
        p95=health.latency_p95_ms if health else row.p95,
        error_rate=health.error_rate if health else row.error_rate,
        traffic=health.traffic_rps if health else row.traffic,
        trend=tuple(p.value for p in trend.points) if trend is not None else row.trend,
        problems=_with_problem(row.problems, "metrics", _problem("metrics", failing)),
    )


def with_health(
    row: OverviewRow,
    healths: Sequence[StageHealth] | None,
    records: Mapping[str, RolledBack] | None = None,
    *,
    prod_stage: str = "production",
) -> OverviewRow:
    """``row`` with its stages' verdicts (services.health.StageHealth) and the rollback records
    (services.incidents.RolledBack by version) of the versions it shows; None keeps the old."""
    from console.services.health import NO_SLO

    changes: dict[str, Any] = {"prod_stage": prod_stage}
    if healths is not None:
        judged = tuple(
            StageVerdict(h.stage, h.version, h.verdict, tuple(h.reasons)) for h in healths
        )
        changes["health"] = judged
        changes["slo"] = not any(v.reasons == (NO_SLO,) for v in judged)
    if records is not None:
        shown = [v for v in (row.staging, row.production, row.newest) if v]
        marked = tuple(dict.fromkeys(v for v in shown if v in records))
        changes["rolled_back"] = marked
        changes["incidents"] = tuple(f"{v} {records[v].sentence()}" for v in marked)
    return replace(row, **changes)


def keep_health(row: OverviewRow, old: OverviewRow) -> OverviewRow:
    """``row`` (read again, its verdicts not yet) with ``old``'s verdicts and rollback marks."""
    return replace(
        row,
        health=old.health,
        slo=old.slo,
        prod_stage=old.prod_stage,
        rolled_back=old.rolled_back,
        incidents=old.incidents,
    )


def with_ci(row: OverviewRow, detail: VersionDetail) -> OverviewRow:
    """``row`` with its newest candidate's CI runs, read after the rest of the row (a CI
    server that hangs holds back nothing else), and the CI problem, if any."""
    section = detail.sections.get("ci")
    unknown = section is not None and not section.configured
    return _set_ci(row, fmt.ci_state(detail), _problem("ci", section), unconfigured=unknown)


def keep_ci(row: OverviewRow, old: OverviewRow) -> OverviewRow:
    """``row`` (read again, its CI not yet) showing ``old``'s CI for the same candidate, so a
    refresh does not blink the CI column to "…"."""
    problem = next((p for p in old.problems if p.kind == "ci"), None)
    return _set_ci(row, old.ci, problem, unconfigured="ci" in old.unconfigured)


def _set_ci(
    row: OverviewRow, ci: str, problem: Problem | None, *, unconfigured: bool
) -> OverviewRow:
    kinds = set(row.unconfigured) - {"ci"}
    if unconfigured:
        kinds.add("ci")
    problems = _with_problem(row.problems, "ci", problem)
    return replace(row, ci=ci, problems=problems, unconfigured=tuple(sorted(kinds)))


def _problem(kind: str, section: Section | None) -> Problem | None:
    """``kind``'s problem when ``section`` (a services Section, or None) failed."""
    if section is None or not section.error:
        return None
    return Problem(kind, section.error, section.kind, section.fetched_at)


def _with_problem(
    problems: tuple[Problem, ...], kind: str, problem: Problem | None
) -> tuple[Problem, ...]:
    """``problems`` with ``kind``'s replaced by ``problem`` (None: no problem)."""
    kept = tuple(p for p in problems if p.kind != kind)
    if problem is None:
        return kept
    return tuple(sorted((*kept, problem), key=lambda p: p.kind))


# How long each overview column stays as the terminal narrows: lower goes first, and below 50
# a column goes before any other shrinks. KEEP never goes: a request waiting for approval is
# the one thing a release manager must not have to arrow through rows to find.
OVERVIEW_PRIORITY: dict[str, int] = {
    "model": KEEP,
    "appr": KEEP,
    "prod": 95,
    "status": 85,
    "staging": 80,
    "ci": 75,
    "wait": 70,
    "p95": 66,
    "err": 65,
    "since": 60,
    "trend": 45,
    "rps": 40,
}

OVERVIEW_COLUMNS = ranked(
    (
        Column("model", "MODEL", 22, min_width=18, flex=True, max_width=40),
        Column("prod", "PROD", 9),
        Column("since", "SINCE", 5, min_width=4, align="right"),
        Column("staging", "STAGING", 9),
        Column("wait", "WAIT", 4, align="right"),
        Column("ci", "CI", 2),
        Column("p95", "P95", 6, align="right"),
        Column("err", "ERRORS", 6, align="right"),
        Column("rps", "TRAFFIC", 7, align="right"),
        Column("trend", "P95 TREND", 10),
        Column("appr", "APPR", 4, align="right"),
        # "✗ staging", "! degraded": a verdict and where it is, never cut
        Column("status", "STATUS", 10, min_width=9),
    ),
    OVERVIEW_PRIORITY,
)

SEVERITY = {"ok": 0, "unknown": 1, "degraded": 2, "breach": 3}


def status_cell(row: OverviewRow, pal: Palette) -> Cell:
    """STATUS, most pressing first: production breaching, another stage breaching (its
    name), a failing backend, degraded, then production's verdict ("ok" without an SLO)."""
    prod = row.verdict_of(row.prod_stage)
    others = [h for h in row.health if h.stage != row.prod_stage and h.verdict != "unknown"]
    other = max(others, key=lambda h: SEVERITY[h.verdict], default=None)
    if prod is not None and prod.verdict == "breach":
        return _c(fmt.health_label("breach"), style=pal.err)
    if other is not None and other.verdict == "breach":
        return _c(f"{fmt.HEALTH_GLYPHS['breach']} {other.stage}", style=pal.err)
    if row.problems:
        kinds = [p.kind for p in row.problems]
        extra = f"+{len(kinds) - 1}" if len(kinds) > 1 else ""
        return _c(f"⚠ {kinds[0]}{extra}", style=pal.warn)
    if prod is not None and prod.verdict == "degraded":
        return _c(fmt.health_label("degraded"), style=pal.warn)
    if other is not None and other.verdict == "degraded":
        return _c(f"! {other.stage}", style=pal.warn)
    if prod is not None and row.slo:
        return _c(fmt.health_label(prod.verdict), style=fmt.health_style(pal, prod.verdict))
    return _c("deprecated" if row.deprecated else "ok", style=pal.muted)


def version_mark_cell(
    version: str | None, rolled_back: bool, style: Style | str | None, pal: Palette
) -> Cell:
    """A version, with ↩ when it was once rolled back (the mark says it, not the colour)."""
    if not version:
        return _c("\u2013", style=pal.muted)
    if not rolled_back:
        return _c(version, style=style)
    text = Text(version, style=style or "")
    text.append(f" {fmt.ROLLED_BACK}", style=pal.warn)
    return text


def overview_cells(row: OverviewRow, pal: Palette, now: datetime) -> dict[str, Cell]:
    """The cells of one overview row."""
    if not row.loaded:
        dots = _c("…", style=pal.muted)
        return {
            "model": _c(row.name, style=pal.bold),
            "status": _c("loading", style=pal.muted),
            "prod": dots,
            "staging": dots,
        }
    ci = row.ci or ""
    metrics_dim = "metrics" in {p.kind for p in row.problems}
    live_style = pal.stale if metrics_dim else None
    return {
        "model": _model_cell(row, pal),
        "prod": version_mark_cell(
            row.production, row.production in row.rolled_back, pal.production, pal
        ),
        "since": _c(fmt.age(row.production_since, now) if row.production else "", style=pal.muted),
        "staging": version_mark_cell(row.staging, row.staging in row.rolled_back, pal.staging, pal),
        "wait": _c(
            str(row.waiting) if row.waiting else "\u2013",
            style=pal.bold if row.waiting else pal.muted,
        ),
        "ci": _c(fmt.CI_GLYPHS.get(ci, "·"), style=pal.ci(ci)),
        "p95": _c(fmt.latency(row.p95), style=live_style or ""),
        "err": _c(fmt.percent(row.error_rate), style=live_style or ""),
        "rps": _c(fmt.rps(row.traffic), style=live_style or ""),
        "trend": _c(fmt.spark(row.trend, 10), style=live_style or pal.primary),
        "appr": _c("?", style=pal.warn)
        if row.approvals == UNKNOWN_APPROVALS
        else _c(str(row.approvals), style=pal.accent)
        if row.approvals
        else _c("\u2013", style=pal.muted),
        "status": status_cell(row, pal),
    }


def _model_cell(row: OverviewRow, pal: Palette) -> Cell:
    """The model's name; a deprecated one dimmed and marked, read the same without colour."""
    if row.deprecated:
        return _c(f"{row.name} {DEPRECATED_MARK}", style=pal.muted)
    return _c(row.name, style=pal.bold)


# -- versions table ---------------------------------------------------------------------------


# The versions table's columns by how long they stay (see OVERVIEW_PRIORITY). Metric columns
# are "m:NAME", ranked by their place among the key metrics; "worst" stands in for the metric
# columns that did not fit, so a version's worst change against production is always on screen.
VERSION_PRIORITY: dict[str, int] = {
    "mark": KEEP,
    "version": KEEP,
    "worst": KEEP,
    "stage": 90,
    "ci": 85,
    "m:1": 80,
    "m:2": 70,
    "created": 60,
    "author": 55,
    "commit": 48,
    "m:3": 45,
    "data": 35,
}


def version_columns(metric_names: Sequence[str]) -> list[Column]:
    """Columns of the versions table with up to three key metrics."""
    metrics = [f"m:{name}" for name in metric_names[:3]]
    cols = [
        Column("mark", " ", 1),
        Column("version", "VERSION", 10, min_width=8),
        Column("stage", "STAGE", 10),  # "production" cut short reads as nothing
        Column("author", "BY", 10, min_width=6, flex=True, max_width=18),
        Column("created", "AGE", 4, align="right"),
        Column("commit", "COMMIT", 8),
        Column("data", "DATA", 8),
        *(Column(key, key[2:].upper()[:14], 14, align="right") for key in metrics),
        Column("ci", "CI", 2),
        Column("worst", "WORST VS PROD", 17, min_width=15, stands_for=tuple(metrics)),
    ]
    priorities = {
        **VERSION_PRIORITY,
        **{key: VERSION_PRIORITY[f"m:{i}"] for i, key in enumerate(metrics, 1)},
    }
    return list(ranked(cols, priorities))


def metric_cell(
    value: float | None,
    base: float | None,
    direction: str,
    number_format: str,
    pal: Palette,
    *,
    is_base: bool = False,
) -> Text:
    """'0.902 ▲+0.008': the value, a better/worse glyph and the signed change vs production."""
    if value is None:
        return Text("\u2013", style=pal.muted)
    text = Text(fmt.number(value, number_format))
    if is_base:
        text.append("  base", style=pal.muted)
        return text
    if base is None:
        return text
    delta = value - base
    better = fmt.better(delta, direction, number_format)
    text.append(" ")
    text.append(
        fmt.verdict(better, delta) + fmt.signed(delta, number_format), style=pal.verdict(better)
    )
    return text


def worst_change(
    metrics: Mapping[str, float], base: Mapping[str, float], names: Sequence[str], specs: Specs
) -> tuple[str, float, bool | None, MetricSpec] | None:
    """Of ``names``, the metric that changed most for the worse against ``base`` (relative to
    the base value, so metrics of any unit compare): (name, delta, better, spec); None when
    no metric has both values."""
    found = []
    for name in names:
        value, before = metrics.get(name), base.get(name)
        if value is None or before is None:
            continue
        spec = specs(name)
        delta = value - before
        better = fmt.better(delta, spec.direction, spec.format)
        gain = delta / abs(before) if before else delta
        score = 0.0 if better is None else gain if spec.direction == "higher" else -gain
        found.append((score, name, delta, better, spec))
    if not found:
        return None
    _score, name, delta, better, spec = min(found, key=lambda f: f[0])
    return name, delta, better, spec


def worst_cell(
    detail: VersionDetail,
    base_detail: VersionDetail | None,
    names: Sequence[str],
    specs: Specs,
    pal: Palette,
    *,
    is_base: bool,
) -> Text:
    """'▼+26.0 latency_p95_ms': the worst change of a version's key metrics vs production."""
    if is_base:
        return Text("base", style=pal.muted)
    base = base_detail.metrics if base_detail is not None else {}
    worst = worst_change(detail.metrics, base, names, specs)
    if worst is None:
        return Text("\u2013", style=pal.muted)
    name, delta, better, spec = worst
    text = Text(
        fmt.verdict(better, delta) + fmt.signed(delta, spec.format), style=pal.verdict(better)
    )
    text.append(f" {name}", style=pal.muted)
    return text


def stage_cell(
    stages: Sequence[str], prod_stage: str, pal: Palette, *, deregistered: bool = False
) -> Text:
    if deregistered:
        return Text("deregistered", style=pal.muted)
    if not stages:
        return Text("")
    ordered = sorted(stages, key=lambda s: s != prod_stage)
    text = Text()
    for i, s in enumerate(ordered):
        if i:
            text.append("+")
        text.append(s if len(ordered) == 1 else s[:4], style=pal.stage(s, prod_stage))
    return text


def version_cells(
    version: ModelVersion,
    stages: Sequence[str],
    detail: VersionDetail | None,
    base_detail: VersionDetail | None,
    *,
    prod_stage: str,
    production: str | None,
    metric_names: Sequence[str],
    specs: Specs,
    pal: Palette,
    now: datetime,
    rolled_back: bool = False,
    key_metrics: Sequence[str] = (),
) -> dict[str, Cell]:
    """Cells of one row of the versions table (detail None: still loading). ``key_metrics``:
    every key metric (the table shows three at most), for the worst change."""
    waiting = _c("…", style=pal.muted)
    cells: dict[str, Cell] = {
        "version": version_mark_cell(
            version.version, rolled_back, pal.bold if stages else None, pal
        ),
        "stage": stage_cell(stages, prod_stage, pal, deregistered=version.deregistered),
        "author": _c(
            version.created_by or "\u2013", style=pal.muted if not version.created_by else ""
        ),
        "created": _c(fmt.age(version.created_at, now), style=pal.muted),
        "commit": _c(version.commit[:8] or "\u2013", style=pal.muted),
    }
    if detail is None:
        cells["data"] = waiting
        cells["ci"] = waiting
        for name in metric_names:
            cells[f"m:{name}"] = waiting
        cells["worst"] = waiting
        return cells
    digest = detail.data.digest if detail.data is not None else ""
    cells["data"] = _c(digest or "\u2013", style=pal.muted)
    ci = fmt.ci_state(detail)
    cells["ci"] = _c(fmt.CI_GLYPHS.get(ci, "·"), style=pal.ci(ci))
    base_metrics = base_detail.metrics if base_detail is not None else {}
    for name in metric_names:
        spec = specs(name)
        cells[f"m:{name}"] = metric_cell(
            detail.metrics.get(name),
            base_metrics.get(name),
            spec.direction,
            spec.format,
            pal,
            is_base=version.version == production,
        )
    cells["worst"] = worst_cell(
        detail,
        base_detail,
        list(key_metrics) or list(metric_names),
        specs,
        pal,
        is_base=version.version == production,
    )
    return cells
