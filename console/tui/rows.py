"""What one row of the overview and of the versions table says, built from service results.

Pure functions: a ModelView (and friends) in, plain values and Rich cells out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rich.style import Style
from rich.text import Text

from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.vtable import Cell, Column

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
    approvals: int | None = None
    versions: int = 0
    problems: tuple[Problem, ...] = ()
    unconfigured: tuple[str, ...] = ()
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


def summarize(
    view: Any,
    prod_stage: str,
    stages: Sequence[str],
    *,
    newest_detail: Any | None = None,
    trend: Any | None = None,
    sections: Mapping[str, Any] | None = None,
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
        versions=len(view.versions),
        problems=problems,
        unconfigured=unconfigured,
    )


def with_live(
    row: OverviewRow, health: Any, health_section: Any, trend: Any, trend_section: Any
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
    healths: Sequence[Any] | None,
    records: Mapping[str, Any] | None = None,
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
        row, health=old.health, slo=old.slo, prod_stage=old.prod_stage,
        rolled_back=old.rolled_back, incidents=old.incidents,
    )  # fmt: skip


def with_ci(row: OverviewRow, detail: Any) -> OverviewRow:
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


def _problem(kind: str, section: Any) -> Problem | None:
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


OVERVIEW_COLUMNS = (
    Column("model", "MODEL", 22, min_width=12, priority=100, flex=True, max_width=40),
    Column("prod", "PROD", 9, priority=95),
    Column("since", "SINCE", 5, min_width=4, priority=60, align="right"),
    Column("staging", "STAGING", 9, priority=80),
    Column("wait", "WAIT", 4, priority=70, align="right"),
    Column("ci", "CI", 2, priority=75),
    Column("p95", "P95", 6, priority=66, align="right"),
    Column("err", "ERRORS", 6, priority=65, align="right"),
    Column("rps", "TRAFFIC", 7, priority=40, align="right"),
    Column("trend", "P95 TREND", 10, priority=45),
    Column("appr", "APPR", 4, priority=20, align="right"),
    Column("status", "STATUS", 10, min_width=8, priority=85),
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
    return _c("ok", style=pal.muted)


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
        "model": _c(row.name, style=pal.bold),
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
        "appr": _c(str(row.approvals), style=pal.accent)
        if row.approvals
        else _c("\u2013", style=pal.muted),
        "status": status_cell(row, pal),
    }


# -- versions table ---------------------------------------------------------------------------


def version_columns(metric_names: Sequence[str]) -> list[Column]:
    """Columns of the versions table with up to three key metrics."""
    cols = [
        Column("mark", " ", 1, priority=100),
        Column("version", "VERSION", 10, min_width=8, priority=100),
        Column("stage", "STAGE", 10, min_width=5, priority=90),
        Column("author", "BY", 10, min_width=6, priority=55, flex=True, max_width=18),
        Column("created", "AGE", 4, priority=60, align="right"),
        Column("commit", "COMMIT", 8, priority=48),
        Column("data", "DATA", 8, priority=35),
    ]
    for i, name in enumerate(metric_names[:3]):
        # The first two key metrics stay; a third goes before anything else is squeezed.
        priority = (80, 70, 45)[i]
        cols.append(Column(f"m:{name}", name.upper()[:15], 15, priority=priority, align="right"))
    cols.append(Column("ci", "CI", 2, priority=85))
    return cols


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
    version: Any,
    stages: Sequence[str],
    detail: Any | None,
    base_detail: Any | None,
    *,
    prod_stage: str,
    production: str | None,
    metric_names: Sequence[str],
    specs: Any,
    pal: Palette,
    now: datetime,
    rolled_back: bool = False,
) -> dict[str, Cell]:
    """Cells of one row of the versions table (detail None: still loading)."""
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
    return cells
