"""The lineage panel: the selected version against production along the four axes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from console.services.lineage import ChangeKind, Lineage
from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.panel import Panel

if TYPE_CHECKING:
    from collections.abc import Callable

    from console.config import MetricSpec

    Specs = Callable[[str], MetricSpec]

MAX_COMMITS = 8
MAX_ITEMS = 8
_MARK = {
    ChangeKind.ADDED: "+",
    ChangeKind.REMOVED: "\u2212",
    ChangeKind.CHANGED: "~",
    ChangeKind.SAME: "=",
}


def _value(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _state(changed: bool, pal: Palette) -> Text:
    return Text("changed", style=pal.accent) if changed else Text("same", style=pal.muted)


def _code(
    lineage: Lineage, pal: Palette, now: datetime, base_label: str = "production"
) -> RenderableType:
    code = lineage.code
    if code is None:
        return Text("no commit recorded for this version", style=pal.muted)
    head = Text()
    if not lineage.base_version:
        head.append(
            f"{fmt.plural(len(code.commits), 'commit')} (nothing to compare with)", style=pal.muted
        )
    elif code.behind:  # an older commit: what the base has that this version lacks
        more = "+" if code.truncated else ""
        head.append(
            f"{fmt.plural(len(code.behind), 'commit')}{more} behind {base_label}", style=pal.warn
        )
        if code.diffstat is not None:
            head.append(" · it lacks", style=pal.muted)
    elif not code.commits:
        head.append("same commit as the base", style=pal.muted)
    else:
        head.append(
            fmt.plural(len(code.commits), "commit") + ("+" if code.truncated else ""),
            style=pal.bold,
        )
        head.append(f" by {', '.join(code.authors[:4])}")
        if len(code.authors) > 4:
            head.append(f" +{len(code.authors) - 4}")
    if code.diffstat is not None:
        lead = " " if code.behind else " · "
        head.append(f"{lead}{fmt.plural(code.diffstat.files, 'file')} ", style=pal.muted)
        head.append(f"+{code.diffstat.insertions}", style=pal.better)
        head.append(" ")
        head.append(f"\u2212{code.diffstat.deletions}", style=pal.worse)
    rows = Table.grid(padding=(0, 1))
    rows.add_column(style=pal.muted, no_wrap=True, min_width=8)
    rows.add_column(no_wrap=True, min_width=5, max_width=10)
    rows.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
    rows.add_column(style=pal.muted, no_wrap=True, justify="right")
    listed = code.commits or code.behind
    for c in listed[:MAX_COMMITS]:
        rows.add_row(Text(c.short), Text(c.author), Text(c.subject), fmt.age(c.authored_at, now))
    parts: list[RenderableType] = [head, rows]
    if len(listed) > MAX_COMMITS:
        parts.append(Text(f"… {len(listed) - MAX_COMMITS} more", style=pal.muted))
    return Group(*parts)


def _model(lineage: Lineage, pal: Palette, specs: Specs) -> RenderableType:
    axis = lineage.model_axis
    parts: list[RenderableType] = []
    if lineage.base_version:
        head = Text()
        head.append_text(_state(axis.changed, pal))
        if axis.params:
            n = len(axis.params)
            head.append(f" · {fmt.plural(n, 'param')} {'differs' if n == 1 else 'differ'}")
        parts.append(head)
        params = Table.grid(padding=(0, 1))
        params.add_column(no_wrap=True)
        params.add_column(no_wrap=True, overflow="ellipsis")
        params.add_column(overflow="ellipsis")
        for p in axis.params[:MAX_ITEMS]:
            if p.kind is ChangeKind.ADDED:
                change = Text(_value(p.after))
            elif p.kind is ChangeKind.REMOVED:
                change = Text(f"was {_value(p.before)}", style=pal.muted)
            else:
                change = Text(f"{_value(p.before)} → {_value(p.after)}")
            params.add_row(Text(_MARK[p.kind], style=pal.accent), Text(p.key), change)
        if axis.params:
            parts.append(params)
        if len(axis.params) > MAX_ITEMS:
            parts.append(Text(f"… {len(axis.params) - MAX_ITEMS} more", style=pal.muted))
    metrics = Text()
    for i, m in enumerate(axis.metrics[:6]):
        spec = specs(m.name)
        if i:
            metrics.append(" · ", style=pal.muted)
        metrics.append(f"{m.name} ", style=pal.muted)
        metrics.append(fmt.number(m.value, spec.format))
        if m.delta is not None:
            better = fmt.better(m.delta, m.direction, spec.format)
            metrics.append(
                f" {fmt.verdict(better, m.delta)}{fmt.signed(m.delta, spec.format)}",
                style=pal.verdict(better),
            )
    if axis.metrics:
        parts.append(metrics)
    return Group(*parts) if parts else Text("no params or metrics recorded", style=pal.muted)


def _schema(lineage: Lineage, pal: Palette) -> RenderableType:
    axis = lineage.schema_axis
    if axis is None or not axis.declared:
        return Text("no schema file declared", style=pal.muted)
    head = _state(axis.changed, pal)
    head.append(f" · {fmt.plural(axis.fields, 'field')}", style=pal.muted)
    if axis.changes:
        head.append(f" · {fmt.plural(len(axis.changes), 'change')}")
    rows = Table.grid(padding=(0, 1))
    rows.add_column(no_wrap=True)
    rows.add_column(no_wrap=True)
    rows.add_column(overflow="ellipsis")
    for f in axis.changes[:MAX_ITEMS]:
        if f.kind is ChangeKind.ADDED:
            what = Text(f.after_type + (" (nullable)" if f.after_nullable else ""))
        elif f.kind is ChangeKind.REMOVED:
            what = Text(f"removed (was {f.before_type})", style=pal.worse)
        else:
            what = Text(f"{f.before_type} → {f.after_type}")
            if f.before_nullable != f.after_nullable:
                what.append(" · nullable" if f.after_nullable else " · not null")
        rows.add_row(Text(_MARK[f.kind], style=pal.accent), f.name, what)
    return Group(head, rows) if axis.changes else head


def _sampling(lineage: Lineage, pal: Palette) -> RenderableType:
    axis = lineage.sampling
    if axis is None:
        return Text("no data version recorded", style=pal.muted)
    head = _state(axis.changed, pal)
    if axis.size_after is not None:
        head.append(f" · {fmt.size(axis.size_before)} → {fmt.size(axis.size_after)}")
        if axis.size_delta:
            head.append(f" ({fmt.signed_size(axis.size_delta)})", style=pal.muted)
    if axis.rows_after is not None:
        head.append(f" · rows {fmt.count(axis.rows_before)} → {fmt.count(axis.rows_after)}")
        if axis.rows_delta:
            head.append(f" ({fmt.signed_count(axis.rows_delta)})", style=pal.muted)
    rows = Table.grid(padding=(0, 1))
    rows.add_column(no_wrap=True)
    rows.add_column(overflow="ellipsis", ratio=1)
    rows.add_column(no_wrap=True, style=pal.muted)
    for o in axis.outputs[:MAX_ITEMS]:
        if o.kind is ChangeKind.SAME:
            detail = "same"
        elif o.kind is ChangeKind.CHANGED:
            detail = f"{o.md5_before[:8]} → {o.md5_after[:8]}"
            if o.size_delta:
                detail += f" {fmt.signed_size(o.size_delta)}"
        else:
            detail = o.kind.value
        rows.add_row(Text(_MARK[o.kind], style=pal.accent), o.path, detail)
    return Group(head, rows)


def render_lineage(
    lineage: Lineage, pal: Palette, now: datetime, specs: Specs, base_label: str = "production"
) -> RenderableType:
    """The four axes as a labelled grid."""
    title = Text()
    title.append(lineage.version, style=pal.bold)
    if lineage.base_version:
        title.append(f" vs {base_label} ", style=pal.muted)
        title.append(lineage.base_version, style=pal.production)
    else:
        title.append("  nothing in production to compare with", style=pal.muted)
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style=pal.heading, no_wrap=True, width=8)
    grid.add_column(ratio=1)
    grid.add_row("CODE", _code(lineage, pal, now, base_label))
    grid.add_row("MODEL", _model(lineage, pal, specs))
    grid.add_row("SCHEMA", _schema(lineage, pal))
    grid.add_row("SAMPLING", _sampling(lineage, pal))
    return Group(title, grid)


class LineagePanel(Panel):
    """Code, model, schema and sampling changes of the selected version vs production."""

    kinds = ("code", "data")
    title = "Lineage"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.lineage: Lineage | None = None
        self.base_label = "production"

    def update_lineage(self, lineage: Lineage, base_label: str = "production") -> None:
        self.lineage = lineage
        self.base_label = base_label
        self.border_title = Text(f"Lineage · {lineage.version}")
        self.set_sections(lineage.sections)
        self.redraw()

    def body(self) -> RenderableType | None:
        if self.lineage is None:
            return None
        config = self.console_app.loaded_config
        return render_lineage(
            self.lineage, self.palette, self.now(), config.metric_spec, self.base_label
        )
