"""The live panel: production's serving health now, the selected version's stage beside it
(its shadow figures, its agreement with production), each stage's verdict, and a chart per
metric with both stages on one time axis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult

from console.services.live import LIVE_METRICS, METRIC_LABELS
from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.charts import Chart, LiveCharts
from console.tui.widgets.panel import Panel

if TYPE_CHECKING:
    from datetime import datetime

    from console.domain import MetricPoint
    from console.services.health import ShadowComparison, StageHealth
    from console.services.live import LiveView


def health_line(
    view: LiveView,
    pal: Palette,
    now: datetime,
    verdict: StageHealth | None = None,
    prod: str = "production",
) -> Text:
    """'production v1.10.0 ✓ ok · now p95 96ms · errors 0.48% · 168/s · observed 5s ago': the
    last reading, marked "now" apart from the verdict's figures over the SLO window."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(view.stage, style=pal.stage(view.stage, prod))
    if view.version:
        text.append(f" {view.version}", style=pal.bold)
    if verdict is not None:
        label = fmt.health_label(verdict.verdict)
        text.append(f" {label}", style=fmt.health_style(pal, verdict.verdict))
    h = view.health
    if h is None:
        text.append("  no health reading", style=pal.muted)
        return text
    for label, value in (
        ("now p95", fmt.latency(h.latency_p95_ms)),
        ("errors", fmt.percent(h.error_rate)),
        ("traffic", fmt.rps(h.traffic_rps)),
        ("score", fmt.number(h.prediction_mean)),
    ):
        text.append(f" · {label} ", style=pal.muted)
        text.append(value)
    if h.observed_at is not None:
        text.append(f" · {fmt.ago(h.observed_at, now)}", style=pal.muted)
    return text


def verdict_line(verdict: StageHealth, pal: Palette) -> Text:
    """'  production: p95 48 ms ≤ 250 ms; errors 0.0% ≤ 2.0%; 1,800 requests in 10 min'."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"  {verdict.stage}: ", style=pal.muted)
    text.append("; ".join(verdict.reasons), style=fmt.health_style(pal, verdict.verdict))
    return text


def shadow_line(c: ShadowComparison, pal: Palette) -> Text:
    """'shadow v1.3.0 vs v1.2.1: decision differs on 25.2% of 135 mirrored requests · PSI 0.88
    · KS 0.41 · 10 min'."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("shadow ", style=pal.muted)
    text.append(f"{c.version or '?'} vs {c.baseline_version or '?'}", style=pal.bold)
    if c.disagreement is None:
        text.append(": no mirrored requests compared yet", style=pal.muted)
    else:
        text.append(": decision differs on ", style=pal.muted)
        text.append(fmt.percent(c.disagreement), style=pal.bold)
        text.append(f" of {c.compared:,.0f} mirrored requests", style=pal.muted)
    if c.psi is not None:
        text.append(" · PSI ", style=pal.muted)
        text.append(f"{c.psi:.2f}", style=pal.warn if c.psi > 0.25 else "")
    if c.ks is not None:
        text.append(f" · KS {c.ks:.2f}", style=pal.muted)
    if c.seconds:
        text.append(f" · {fmt.duration(c.seconds)}", style=pal.muted)
    return text


def _series(view: LiveView | None, metric: str) -> tuple[MetricPoint, ...]:
    series = view.series.get(metric) if view is not None else None
    return tuple(series.points) if series is not None else ()


def charts_of(view: LiveView, other: LiveView | None = None) -> list[Chart]:
    """One chart per live metric; with ``other`` (another stage's view) its series too, both
    on one time axis: minutes before the newest point of either."""
    charts = []
    for metric in LIVE_METRICS:
        label, _unit = METRIC_LABELS[metric]
        kind = "line"
        if metric == "prediction_mean":
            label, kind = "prediction score distribution", "hist"
        points, theirs = _series(view, metric), _series(other, metric)
        step = 15.0
        if len(points) > 1:
            step = max(1.0, (points[-1].at - points[0].at).total_seconds() / (len(points) - 1))
        newest = max((p[-1].at for p in (points, theirs) if p), default=None)

        def xs(pts: tuple[MetricPoint, ...], end: datetime | None = newest) -> tuple[float, ...]:
            return tuple((p.at - end).total_seconds() / 60 for p in pts) if end else ()

        names = (view.stage if view else "", other.stage if other is not None else "")
        charts.append(
            Chart(
                metric,
                label,
                kind,
                tuple(p.value for p in points),
                step,
                xs=xs(points) if theirs else (),
                other=tuple(p.value for p in theirs),
                other_xs=xs(theirs),
                names=names,
            )
        )
    return charts


class LivePanel(Panel):
    """Latency, error rate, traffic and prediction distribution of production, and of the
    selected version's stage beside it when that is another one."""

    kinds = ("metrics",)
    title = "Live"

    DEFAULT_CSS = """
    LivePanel { overflow-y: hidden; }
    LivePanel > .panel-body { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view: LiveView | None = None
        self.other: LiveView | None = None
        self.verdicts: dict[str, StageHealth] = {}
        self.shadow: ShadowComparison | None = None

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield LiveCharts(id="charts")

    def update_live(
        self,
        view: LiveView,
        *,
        other: LiveView | None = None,
        verdicts: dict[str, StageHealth] | None = None,
        shadow: ShadowComparison | None = None,
    ) -> None:
        self.view, self.other, self.shadow = view, other, shadow
        self.verdicts = verdicts or {}
        self.border_title = Text(f"Live · {view.stage}" + (f" + {other.stage}" if other else ""))
        self.set_sections({"metrics": view.section})
        charts = self.query_one(LiveCharts)
        charts.display = True
        charts.set_charts(charts_of(view, other), stale=not view.section.ok)
        self.redraw()

    def no_production(self, stage: str) -> None:
        self.view = self.other = self.shadow = None
        self.set_sections({})
        self.query_one(LiveCharts).set_charts([])
        self.show(
            Text(f"nothing in {stage} yet: no live metrics to show", style=self.palette.muted)
        )
        self.query_one(LiveCharts).display = False

    def body(self) -> RenderableType | None:
        if self.view is None:
            return None
        pal, now = self.palette, self.now()
        config = self.console_app.config
        prod = config.prod_stage if config is not None else "production"
        lines: list[RenderableType] = []
        for view in (self.view, self.other):
            if view is None:
                continue
            verdict = self.verdicts.get(view.stage)
            lines.append(health_line(view, pal, now, verdict, prod))
            if verdict is not None and verdict.verdict != "ok":
                lines.append(verdict_line(verdict, pal))
        if self.shadow is not None:
            lines.append(shadow_line(self.shadow, pal))
        return Group(*lines)
