"""The text lines around the tables: title bars, the overview's detail bar, the stage line.

Pure functions of service results and a palette, so the screens only decide when to redraw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from console.tui import format as fmt
from console.tui.format import data_age, section_problem
from console.tui.palette import Palette
from console.tui.rows import OverviewRow

if TYPE_CHECKING:
    from console.services.health import StageHealth
    from console.services.incidents import RolledBack
    from console.services.overview import ModelView, Section
    from console.services.release.request_fold import RequestView
    from console.services.watch import WatchState


def title_line(left: Text, right: Text) -> Table:
    """Where you are on the left, the state of things on the right (never cut)."""
    grid = Table.grid(expand=True, padding=(0, 1))  # a space between the two, always
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    grid.add_column(justify="right", no_wrap=True, min_width=right.cell_len)
    grid.add_row(left, right)
    return grid


def overview_title(
    pal: Palette,
    workspace: str,
    *,
    ready: bool,
    total: int,
    shown: int,
    filter_text: str,
    rows: Iterable[OverviewRow],
    registry: Section | None,
    hidden: int = 0,
) -> Table:
    left = Text.assemble(("cd4ml-console", pal.heading), ("  ", ""), (workspace, pal.bold))
    right = Text()
    if not ready:
        right.append("opening workspace…", style=pal.muted)
        return title_line(left, right)
    rows = list(rows)
    total -= hidden  # deprecated models left out (`d` shows them)
    right.append(fmt.plural(total, "model"), style=pal.muted)
    if hidden:
        right.append(f" (+{hidden} deprecated: d)", style=pal.muted)
    if filter_text:
        right.append(f"  filter \u201c{filter_text}\u201d {shown}/{total}", style=pal.accent)
    breaching = sum(1 for r in rows if any(h.verdict == "breach" for h in r.health))
    if breaching:
        right.append(f"  ✗ {fmt.plural(breaching, 'breach', 'breaches')}", style=pal.err)
    failing = sum(1 for r in rows if r.ci == "failure")
    if failing:
        right.append(f"  ✗ {failing} failing CI", style=pal.err)
    broken = {p.kind for r in rows for p in r.problems}
    if registry is not None and not registry.ok:
        broken.add("registry")
    if broken:
        right.append(f"  ⚠ {', '.join(sorted(broken))}", style=pal.warn)
    return title_line(left, right)


def overview_detail(
    pal: Palette,
    now: datetime,
    name: str | None,
    row: OverviewRow | None,
    description: str,
    registry: Section | None,
) -> Text:
    """The bar under the overview: the highlighted model in sentences, and what failed."""
    text = Text(no_wrap=False)
    if registry is not None and not registry.ok:
        text.append("⚠ registry " + section_problem(registry, now) + "\n", style=pal.warn)
    if name is None:
        return text
    text.append(name, style=pal.heading)
    if description:
        text.append(f"  {description}", style=pal.muted)
    text.append("\n")
    if row is None or not row.loaded:
        text.append("loading…", style=pal.muted)
        return text
    if row.production:
        text.append("production ", style=pal.muted)
        text.append(row.production, style=pal.production)
        since = f" since {fmt.when(row.production_since)} ({fmt.age(row.production_since, now)})"
        text.append(since, style=pal.muted)
        if row.production_by:
            text.append(f" by {row.production_by}", style=pal.muted)
    else:
        text.append("nothing in production yet", style=pal.muted)
    if row.staging:
        text.append(f" · {row.staging_name} ", style=pal.muted)
        text.append(row.staging, style=pal.staging)
    if row.waiting:
        waiting = f" · {fmt.plural(row.waiting, 'candidate')} waiting, newest {row.newest} "
        text.append(waiting, style=pal.muted)
        ci = f"{fmt.CI_GLYPHS.get(row.ci, '·')} {fmt.CI_WORDS.get(row.ci, 'CI unknown')}"
        text.append(ci, style=pal.ci(row.ci))
    if row.approvals:
        waiting = f" · {fmt.plural(row.approvals, 'request')} waiting for approval"
        text.append(waiting, style=pal.accent)
    if row.slo:
        for h in reversed(row.health):  # production first
            text.append("\n")
            text.append(f"{h.stage} {h.version or ''} ", style=pal.muted)
            text.append(fmt.health_label(h.verdict), style=fmt.health_style(pal, h.verdict))
            text.append(f": {'; '.join(h.reasons)}", style=pal.muted)
    for incident in row.incidents:
        text.append(f"\n{fmt.ROLLED_BACK} {incident}", style=pal.warn)
    for p in row.problems:
        age = f"showing data from {fmt.ago(p.last_good, now)}" if p.last_good else "no data yet"
        text.append(f"\n⚠ {p.kind} {p.label}: {p.message} · {age} · r retries", style=pal.warn)
    return text


def model_title(
    pal: Palette,
    model: str,
    description: str,
    *,
    versions: int | None,
    filter_text: str,
    shown: int,
    marked: int,
    problems: Iterable[str],
) -> Table:
    left = Text.assemble(
        ("cd4ml-console", pal.muted), (" \u203a ", pal.muted), (model, pal.heading)
    )
    if description:
        left.append(f"  {description}", style=pal.muted)
    right = Text()
    if versions is not None:
        right.append(fmt.plural(versions, "version"), style=pal.muted)
        if filter_text:
            right.append(f"  filter \u201c{filter_text}\u201d {shown}", style=pal.accent)
        if marked:
            right.append(f"  {marked} marked · c compares", style=pal.accent)
        failing = sorted(set(problems))
        if failing:
            right.append(f"  ⚠ {', '.join(failing)}", style=pal.warn)
    return title_line(left, right)


def stage_line(
    pal: Palette,
    now: datetime,
    view: ModelView | None,
    prod_stage: str,
    *,
    width: int = 0,
    health: dict[str, StageHealth] | None = None,
    rolled_back: Iterable[str] = (),
) -> Table:
    """`staging v1.13.0 ↩ 1d dana ✗ BREACH ─▶ production v1.10.0 7d dana ✓ ok │ 4 candidates
    waiting`: each stage's version (↩: once rolled back) and its health verdict; the count of
    candidates (and a registry problem) on the right, never cut. Where ``width`` is short, who
    assigned each stage goes first, then how long ago (the verdicts stay)."""
    if view is None:
        return title_line(Text(), Text())
    right = Text(f"│ {fmt.plural(len(view.candidates), 'candidate')} waiting", style=pal.muted)
    registry = view.sections.get("registry")
    if registry is not None and registry.error:
        right.append(f"  ⚠ registry: {data_age(registry, now)} · r retries", style=pal.warn)
    left = Text()
    marked = set(rolled_back)
    for detail in (2, 1, 0):
        left = _stages_text(pal, now, view, prod_stage, detail, health or {}, marked)
        if not width or left.cell_len + right.cell_len + 1 <= width:
            break
    if registry is not None and registry.error:
        left.append(f"  ⚠ {registry.error.rstrip('.')}", style=pal.warn)
    return title_line(left, right)


def _stages_text(
    pal: Palette,
    now: datetime,
    view: ModelView,
    prod_stage: str,
    detail: int,
    health: dict[str, StageHealth],
    marked: set[str],
) -> Text:
    """Each stage's version (↩ when once rolled back), with its age (detail >= 1), who assigned
    it (detail 2) and its health verdict."""
    text = Text()
    for n, a in enumerate(view.stages):
        if n:
            text.append("  ─▶  " if detail == 2 else " ─▶ ", style=pal.muted)
        text.append(f"{a.stage} ", style=pal.muted)
        style = pal.stage(a.stage, prod_stage) if a.version else pal.muted
        text.append(a.version or "∅", style=style)
        if a.version in marked:
            text.append(f" {fmt.ROLLED_BACK}", style=pal.warn)
        if a.version and a.assigned_at and detail >= 1:
            text.append(f" {fmt.age(a.assigned_at, now)}", style=pal.muted)
            if a.assigned_by and detail == 2:
                text.append(f" {a.assigned_by}", style=pal.muted)
        judged = health.get(a.stage)
        if judged is not None and a.version:
            verdict = judged.verdict
            text.append(f" {fmt.health_label(verdict)}", style=fmt.health_style(pal, verdict))
    return text


def requests_line(pal: Palette, waiting: Sequence[RequestView]) -> Table:
    """`awaiting approval: v2.0.0 → production (0 of 1) by alice` and, on the right and never
    cut, `a decides · req-0001` (the request's id while only one waits)."""
    text = Text()
    if not waiting:
        return title_line(text, Text())
    text.append("awaiting approval: ", style=pal.warn)
    for n, view in enumerate(waiting):
        req = view.request
        if n:
            text.append("; ", style=pal.muted)
        kind = "rollback to " if req.rollback else ""
        text.append(f"{kind}{req.version} → {req.stage}", style=pal.bold)
        approvals = sum(1 for a in req.approvals if a.decision.value == "approve")
        need = view.events[0].details.get("required_approvals") if view.events else None
        count = f"{approvals} of {need}" if isinstance(need, int) else f"{approvals} approvals"
        text.append(f" ({count}) by {req.requested_by}", style=pal.muted)
    right = Text("a decides", style=pal.muted)
    if len(waiting) == 1:
        right.append(f" · {waiting[0].id}", style=pal.muted)
    return title_line(text, right)


def incident_line(pal: Palette, version: str | None, record: RolledBack | None) -> Text:
    """'↩ v1.3.0 was rolled back from production … by erin: why'."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if record is None or version is None:
        return text
    text.append(f"{fmt.ROLLED_BACK} {version} ", style=pal.warn)
    text.append(f"was {record.sentence()}", style=pal.warn)
    return text


def watch_line(pal: Palette, state: WatchState | None) -> Text:
    """'watching production v1.3.0: 2 min of 10 min: ok …', then how it ended: 'healthy after
    10 min', or 'breach: p95 1.7 s > 500 ms — R to roll back'."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if state is None:
        return text
    verdict = state.health.verdict if state.health is not None else "unknown"
    if state.done:
        verdict = "ok" if state.outcome == "healthy" else state.outcome
    text.append(f"{fmt.HEALTH_GLYPHS.get(verdict, '?')} ", style=fmt.health_style(pal, verdict))
    text.append(f"{state.stage} {state.version or ''}: ", style=pal.bold)
    text.append(state.message, style=fmt.health_style(pal, verdict) if state.done else pal.muted)
    if state.done and state.outcome == "breach":
        text.append(" — R to roll back", style=pal.err)
    return text
