"""The audit trail panel: who held each stage when, and every event, newest first."""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len, set_cell_size
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from console.domain.text import escape_controls
from console.services.timeline import Timeline, TimelineEntry
from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.columns import CroppedLines, Part
from console.tui.widgets.panel import Panel

MAX_ENTRIES = 200
ACTOR_WIDTH = 12
SOURCE_MARK = {"registry": "reg", "audit": "log"}


def _periods(timeline: Timeline, stages: list[str], pal: Palette, prod_stage: str) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="ellipsis")
    for stage in reversed(stages):
        periods = timeline.periods_of(stage)
        if not periods:
            continue
        line = Text()
        for i, p in enumerate(periods[:4]):
            if i:
                line.append(" ← ", style=pal.muted)
            line.append(
                escape_controls(p.version or "∅"),
                style=pal.stage(stage, prod_stage) if i == 0 else pal.muted,
            )
            if i == 0:
                by = f" by {escape_controls(p.actor)}" if p.actor else ""
                since = f" since {fmt.when(p.start)}{by}"
                line.append(since, style=pal.muted)
            else:
                line.append(
                    f" ({fmt.when(p.start)[:6]}\u2013{fmt.when(p.end)[:6]})", style=pal.muted
                )
        grid.add_row(Text(stage, style=pal.stage(stage, prod_stage)), line)
    return grid


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "\u2026"
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def _events(
    entries: list[TimelineEntry], pal: Palette, prod_stage: str, now: datetime
) -> CroppedLines:
    """One line per event, in columns (time, age, actor, source, text)."""
    cols = [
        (
            fmt.when(e.at),
            fmt.age(e.at, now),
            escape_controls(e.actor) or "\u2013",
            SOURCE_MARK.get(e.source, e.source),
        )
        for e in entries
    ]
    widths = [max(cell_len(c[i]) for c in cols) for i in range(4)]
    widths[2] = min(widths[2], ACTOR_WIDTH)
    lines: list[list[Part]] = []
    for e, (when, age, actor, source) in zip(entries, cols, strict=True):
        style: Style | None = None
        if e.stage and e.action in ("assign", "promote", "rollback"):
            style = pal.stage(e.stage, prod_stage)
        lines.append(
            [
                (f"{_fit(when, widths[0])} {_fit(age, widths[1], right=True)} ", pal.muted),
                (_fit(actor, widths[2]) + " ", None),
                (_fit(source, widths[3]) + " ", pal.muted),
                (e.text, style),
            ]
        )
    return CroppedLines(lines)


def render_trail(
    timeline: Timeline, stages: list[str], prod_stage: str, pal: Palette, now: datetime
) -> RenderableType:
    """Stage periods on top, then the merged events."""
    if not timeline.entries:
        return Text("no history recorded yet", style=pal.muted)
    events = _events(list(timeline.entries[:MAX_ENTRIES]), pal, prod_stage, now)
    parts: list[RenderableType] = [_periods(timeline, stages, pal, prod_stage), Text(""), events]
    if len(timeline.entries) > MAX_ENTRIES:
        parts.append(Text(f"… {len(timeline.entries) - MAX_ENTRIES} older", style=pal.muted))
    return Group(*parts)


class TrailPanel(Panel):
    """The model's history: registry events (git tags, aliases) merged with the audit log."""

    kinds = ("registry", "audit")
    title = "Audit trail"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.timeline: Timeline | None = None

    def update_timeline(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.set_sections(timeline.sections)
        unconfigured = [k for k, s in timeline.sections.items() if not s.configured]
        self._note = f"no {' or '.join(unconfigured)} backend configured" if unconfigured else ""
        self.redraw()

    def body(self) -> RenderableType | None:
        if self.timeline is None:
            return None
        config = self.console_app.loaded_config
        return render_trail(
            self.timeline, list(config.stages), config.prod_stage, self.palette, self.now()
        )
