"""The CI panel: the runs for the selected version's commit, their jobs and links."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.panel import Panel

if TYPE_CHECKING:
    from console.domain import CIRun
    from console.services.overview import VersionDetail


def run_state(run: CIRun) -> str:
    """success / failure / running, the words the glyphs stand for."""
    if run.status.value != "completed":
        return "running"
    return "success" if run.succeeded else "failure"


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return ""
    seconds = int(((end or now) - start).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def render_ci(detail: VersionDetail, pal: Palette, now: datetime) -> RenderableType:
    """Runs newest first; each with its conclusion in words and glyph, and its jobs."""
    head = Text()
    head.append(detail.version, style=pal.bold)
    if detail.commit is not None:
        head.append(f" · {detail.commit.short} {detail.commit.subject}", style=pal.muted)
    if not detail.ci_read:
        return Group(head, Text("loading CI runs…", style="italic"))
    if not detail.ci:
        if fmt.ci_state(detail) == "unknown":  # the problem line above says why
            return Group(head, Text("CI runs unknown", style=pal.muted))
        return Group(head, Text("no CI runs recorded for this commit", style=pal.muted))
    parts: list[RenderableType] = [head]
    for n, run in enumerate(detail.ci):
        state = run_state(run)
        if run.conclusion is not None and state == "failure":
            word = run.conclusion.value.replace("_", " ")
        else:
            word = fmt.CI_WORDS[state]
        line = Text()
        line.append(f"{fmt.CI_GLYPHS[state]} {word:<8}", style=pal.ci(state))
        line.append(f" {run.pipeline}", style=pal.bold)
        line.append(f"  #{run.id}", style=pal.muted)
        if run.actor:
            line.append(f"  by {run.actor}", style=pal.muted)
        if run.started_at:
            line.append(
                f"  {fmt.when(run.started_at)} ({fmt.age(run.started_at, now)} ago)"
                f", took {_duration(run.started_at, run.finished_at, now)}",
                style=pal.muted,
            )
        if n:
            line.append("  earlier attempt", style=pal.muted)
        parts.append(line)
        if run.jobs:
            jobs = Table.grid(padding=(0, 1))
            jobs.add_column(width=2)
            jobs.add_column(no_wrap=True)
            jobs.add_column(no_wrap=True, style=pal.muted, justify="right")
            jobs.add_column(style=pal.muted, overflow="ellipsis")
            for job in run.jobs:
                jstate = (
                    "running"
                    if job.status.value != "completed"
                    else (
                        "success"
                        if job.conclusion and job.conclusion.value == "success"
                        else "failure"
                    )
                )
                tests = ""
                if job.tests_total is not None:
                    tests = f"{job.tests_total} tests, {job.tests_failed or 0} failed"
                jobs.add_row(
                    Text(" " + fmt.CI_GLYPHS[jstate], style=pal.ci(jstate)),
                    Text(job.name),
                    _duration(job.started_at, job.finished_at, now),
                    tests,
                )
            parts.append(jobs)
        if run.url:
            parts.append(Text(f"   {run.url}", style=pal.muted))
    return Group(*parts)


class CIPanel(Panel):
    """CI runs and jobs for the selected version."""

    kinds = ("ci",)
    title = "CI"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.detail: VersionDetail | None = None

    def update_detail(self, detail: VersionDetail) -> None:
        self.detail = detail
        self.border_title = Text(f"CI · {detail.version}")
        self.set_sections(detail.sections)
        self.redraw()

    def body(self) -> RenderableType | None:
        if self.detail is None:
            return None
        return render_ci(self.detail, self.palette, self.now())
