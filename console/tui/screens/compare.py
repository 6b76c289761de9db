"""`c`: the marked versions (or the selected one) against the stage's version: metric deltas
(direction-aware: ▲ better, ▼ worse, with signed numbers), CI, a metric trend across every
version, and each candidate's four axes (code, model/params, schema, sampling)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.tui import format as fmt
from console.tui.headers import title_line
from console.tui.palette import Palette, palette_of
from console.tui.planview import error_text, heading
from console.tui.screens.base import ConsoleScreen
from console.tui.widgets.bars import TitleBar, tolerate_teardown
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.lineage import render_lineage

if TYPE_CHECKING:
    from console.config import MetricSpec
    from console.services.lineage import MetricDelta
    from console.services.release.compare import Comparison, LiveSide

Specs = Callable[[str], "MetricSpec"]

log = logging.getLogger(__name__)
TREND_METRICS = 4
TREND_WIDTH = 50


def _metric_cell(m: MetricDelta | None, spec: MetricSpec, pal: Palette) -> Text:
    if m is None or m.value is None:
        return Text("\u2013", style=pal.muted)
    text = Text(fmt.number(m.value, spec.format))
    if m.delta is not None:
        better = fmt.better(m.delta, m.direction, spec.format)
        text.append(
            f" {fmt.verdict(better, m.delta)}{fmt.signed(m.delta, spec.format)}",
            style=pal.verdict(better),
        )
    return text


def metrics_table(c: Comparison, pal: Palette, specs: Specs) -> Table:
    """Metric rows; the stage's version, then one column per candidate."""
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style=pal.muted)
    table.add_column("metric", no_wrap=True, style=pal.bold)
    table.add_column(Text(f"{c.stage} {c.base_version or '∅'}"), no_wrap=True, justify="right")
    for cand in c.candidates:
        table.add_column(Text(cand.version), no_wrap=True, justify="right")
    for name in c.metric_names:
        spec = specs(name)
        found = [next((m for m in cand.metrics if m.name == name), None) for cand in c.candidates]
        base = next((m.base for m in found if m is not None and m.base is not None), None)
        table.add_row(
            Text(name), fmt.number(base, spec.format), *(_metric_cell(m, spec, pal) for m in found)
        )
    if c.candidates:
        verdicts = []
        for cand in c.candidates:
            text = Text(f"{cand.better} {fmt.BETTER}", style=pal.better)
            text.append(" · ", style=pal.muted)
            text.append(f"{cand.worse} {fmt.WORSE}", style=pal.worse)
            verdicts.append(text)
        table.add_row(Text("better · worse", style=pal.muted), "", *verdicts)
        table.add_row(
            Text("CI", style=pal.muted),
            "",
            *(
                Text(
                    f"{fmt.CI_GLYPHS.get(x.ci, '·')} {fmt.CI_WORDS.get(x.ci, x.ci)}",
                    style=pal.ci(x.ci),
                )
                for x in c.candidates
            ),
        )
        table.add_row(
            Text("by", style=pal.muted), "", *(Text(x.created_by or "\u2013") for x in c.candidates)
        )
    return table


def trend_block(c: Comparison, pal: Palette, specs: Specs) -> RenderableType:
    """One sparkline per metric across the versions (oldest → newest), with the candidates
    (^) and the stage's version (P) marked underneath."""
    points = list(c.trend)[-TREND_WIDTH:]
    if not points or not c.metric_names:
        return Text("no metric history", style=pal.muted)
    wanted = {x.version for x in c.candidates}
    marks = "".join(
        "^" if p.version in wanted else "P" if p.version == c.base_version else " " for p in points
    )
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, style=pal.bold)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style=pal.muted)
    for name in c.metric_names[:TREND_METRICS]:
        values = [p.metrics.get(name) for p in points]
        known = [v for v in values if v is not None]
        if not known:
            continue
        spec = specs(name)
        line = fmt.spark([v if v is not None else min(known) for v in values], len(points))
        span = f"{fmt.number(min(known), spec.format)} … {fmt.number(max(known), spec.format)}"
        direction = "higher is better" if spec.direction == "higher" else "lower is better"
        table.add_row(Text(name), Text(line, style=pal.primary), f"{span} ({direction})")
    table.add_row("", Text(marks, style=pal.accent), Text("^ compared  P " + c.stage))
    first, last = points[0].version, points[-1].version
    note = Text(f"{len(points)} versions, {first} → {last}", style=pal.muted)
    return Group(note, table)


def _live_value(metric: str, side: LiveSide | None, base: LiveSide | None, pal: Palette) -> Text:
    """A live figure and, beside the base's, its change (lower is better: ▲ means lower)."""
    f = side.figures if side is not None else None
    value = getattr(f, metric, None) if f is not None else None
    if value is None:
        return Text("\u2013", style=pal.muted)
    shows: dict[str, Callable[[float | None], str]] = {
        "latency_p95_ms": fmt.latency,
        "error_rate": fmt.percent,
        "traffic_rps": fmt.rps,
    }
    show = shows[metric]
    text = Text(show(value))
    theirs = getattr(base.figures, metric, None) if base is not None and base.figures else None
    if side is base or theirs is None or metric == "traffic_rps":
        return text
    delta = value - theirs
    better = None if delta == 0 else delta < 0
    sign = "+" if delta >= 0 else "\u2212"
    text.append(f" {fmt.verdict(better, delta)}{sign}{show(abs(delta))}", style=pal.verdict(better))
    return text


def live_table(c: Comparison, pal: Palette) -> Table:
    """The stage's version and each candidate live, over the SLO window, where each serves."""
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style=pal.muted)
    base = c.live_base
    sides = [base] + [c.live.get(x.version) for x in c.candidates]
    table.add_column(f"last {fmt.duration(c.live_window)}", no_wrap=True, style=pal.bold)
    heads = [f"{c.stage} {c.base_version or '∅'}"] + [
        f"{x.version} ({s.stage})" if s is not None and s.stage else x.version
        for x, s in zip(c.candidates, sides[1:], strict=True)
    ]
    for head in heads:
        table.add_column(head, no_wrap=True, justify="right")

    def health(s: LiveSide | None) -> Text:
        if s is None or not s.verdict:
            return Text("\u2013", style=pal.muted)
        return Text(fmt.health_label(s.verdict), style=fmt.health_style(pal, s.verdict))

    def count(s: LiveSide | None) -> Text:
        n = s.figures.requests if s is not None and s.figures is not None else None
        return Text(fmt.count(round(n)) if n is not None else "\u2013")

    def agreement(s: LiveSide | None) -> Text:
        sh = s.shadow if s is not None else None
        if sh is None or sh.disagreement is None:
            return Text("\u2013", style=pal.muted)
        return Text(f"{fmt.percent(sh.disagreement)} of {fmt.count(round(sh.compared))}")

    def shift(s: LiveSide | None) -> Text:
        sh = s.shadow if s is not None else None
        if sh is None or sh.psi is None:
            return Text("\u2013", style=pal.muted)
        return Text(f"PSI {sh.psi:.2f} · KS {sh.ks:.2f}", style=pal.warn if sh.psi > 0.25 else "")

    table.add_row("health", *(health(s) for s in sides))
    for metric, label in (
        ("latency_p95_ms", "p95 latency"),
        ("error_rate", "error rate"),
        ("traffic_rps", "traffic"),
    ):
        table.add_row(label, *(_live_value(metric, s, base, pal) for s in sides))
    table.add_row("requests", *(count(s) for s in sides))
    table.add_row("decision differs", Text(""), *(agreement(s) for s in sides[1:]))
    table.add_row("score shift", Text(""), *(shift(s) for s in sides[1:]))
    return table


def live_block(c: Comparison, pal: Palette) -> list[RenderableType]:
    """LIVE: the table, then why a side has no figures, in words."""
    parts: list[RenderableType] = [heading(f"live vs {c.stage} {c.base_version or '∅'}", pal)]
    parts.append(live_table(c, pal))
    sides = [c.live_base, *c.live.values()]
    for s in sides:
        if s is not None and s.error:
            parts.append(Text(f"  {s.version or '∅'}: {s.error}", style=pal.muted))
    for s in sides:
        if s is not None and s.verdict not in ("", "ok") and not s.error:
            said = "; ".join(s.reasons)
            parts.append(Text(f"  {s.version} in {s.stage}: {said}", style=pal.muted))
    return parts


def incident_block(c: Comparison, pal: Palette) -> list[RenderableType]:
    return [
        Text(f"{fmt.ROLLED_BACK} {version} was {rec.sentence()}", style=pal.warn)
        for version, rec in sorted(c.rolled_back.items())
    ]


def render_comparison(c: Comparison, pal: Palette, now: datetime, specs: Specs) -> RenderableType:
    """Metrics, live figures, trend, then each candidate's four axes."""
    parts: list[RenderableType] = []
    for kind, message in sorted(c.errors.items()):
        parts.append(Text(f"⚠ {kind}: {message}", style=pal.warn))
    parts += incident_block(c, pal)
    parts += [heading(f"metrics vs {c.stage} {c.base_version or '(nothing there)'}", pal)]
    parts += [metrics_table(c, pal, specs), Text("")]
    parts += [*live_block(c, pal), Text("")]
    parts += [heading("trend across versions", pal), trend_block(c, pal, specs)]
    for cand in c.candidates:
        parts.append(Rule(style=pal.muted))
        parts.append(render_lineage(cand.lineage, pal, now, specs, base_label=c.stage))
    return Group(*parts)


class CompareScreen(ConsoleScreen):
    """N candidates against the stage's version, on one scrollable page."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    CompareScreen { layout: vertical; background: $background; }
    CompareScreen #compare { height: 1fr; background: $surface; padding: 0 1; }
    CompareScreen #compare:focus { background-tint: $foreground 3%; }
    """
    help_title = "Compare"

    def __init__(self, model: str, versions: Sequence[str], *, stage: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.versions = list(dict.fromkeys(versions))
        self.stage = stage
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        with VerticalScroll(id="compare"):
            yield Static(Text("comparing…", style="italic"), id="comparison")
        yield KeyBar()

    def on_mount(self) -> None:
        self._title()
        self.query_one("#compare").focus()
        self.load()

    def _title(self) -> None:
        pal = palette_of(self.app)
        left = Text.assemble(
            ("cd4ml-console", pal.muted),
            (" \u203a ", pal.muted),
            (self.model, pal.heading),
            (" \u203a compare ", pal.muted),
            (", ".join(self.versions), pal.bold),
        )
        right = Text()
        c = self.comparison
        if c is not None:
            right.append(f"vs {c.stage} {c.base_version or '∅'}", style=pal.muted)
        self.query_one(TitleBar).update(title_line(left, right))

    @work(group="compare", exclusive=True)
    @tolerate_teardown
    async def load(self) -> None:
        from console.services.release.compare import compare

        app = self.console_app
        await app.ready.wait()
        body = self.query_one("#comparison", Static)
        try:
            c = await compare(
                self.workspace,
                self.model,
                self.versions,
                stage=self.stage,
                overview=self.services.overview,
            )
        except Exception as exc:  # refused (unknown version) or a backend: in words
            from console.services.release import Refused

            if not isinstance(exc, Refused):
                log.exception("compare failed")
            body.update(error_text(exc, palette_of(app)))
            return
        self.comparison = c
        self._title()
        body.update(render_comparison(c, palette_of(app), app.clock(), self.config.metric_spec))

    def refresh_data(self) -> None:
        """`r`: compare again."""
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
