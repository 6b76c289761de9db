"""The live panel: production's serving health now, and a chart per metric."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult

from console.services.live import LIVE_METRICS, METRIC_LABELS
from console.tui import format as fmt
from console.tui.palette import Palette
from console.tui.widgets.charts import Chart, LiveCharts
from console.tui.widgets.panel import Panel


def health_line(view: Any, pal: Palette, now: Any) -> Text:
    """'production v1.10.0 · p95 96ms · errors 0.48% · 168/s · observed 5s ago'."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(view.stage, style=pal.production)
    if view.version:
        text.append(f" {view.version}", style=pal.bold)
    h = view.health
    if h is None:
        text.append("  no health reading", style=pal.muted)
        return text
    for label, value in (
        ("p95", fmt.latency(h.latency_p95_ms)),
        ("errors", fmt.percent(h.error_rate)),
        ("traffic", fmt.rps(h.traffic_rps)),
        ("score", fmt.number(h.prediction_mean)),
    ):
        text.append(f" · {label} ", style=pal.muted)
        text.append(value)
    if h.observed_at is not None:
        text.append(f" · {fmt.ago(h.observed_at, now)}", style=pal.muted)
    return text


def charts_of(view: Any) -> list[Chart]:
    """One chart per live metric, in the order the console shows them."""
    charts = []
    for metric in LIVE_METRICS:
        label, _unit = METRIC_LABELS[metric]
        kind = "line"
        if metric == "prediction_mean":
            label, kind = "prediction score distribution", "hist"
        series = view.series.get(metric) if view is not None else None
        points = tuple(series.points) if series is not None else ()
        step = 15.0
        if len(points) > 1:
            step = max(1.0, (points[-1].at - points[0].at).total_seconds() / (len(points) - 1))
        charts.append(Chart(metric, label, kind, tuple(p.value for p in points), step))
    return charts


class LivePanel(Panel):
    """Latency, error rate, traffic and prediction distribution of the production version."""

    kinds = ("metrics",)
    title = "Live"

    DEFAULT_CSS = """
    LivePanel { overflow-y: hidden; }
    LivePanel > .panel-body { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view: Any = None

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield LiveCharts(id="charts")

    def update_live(self, view: Any) -> None:
        self.view = view
        self.border_title = Text(f"Live · {view.stage}")
        self.set_sections({"metrics": view.section})
        charts = self.query_one(LiveCharts)
        charts.display = True
        charts.set_charts(charts_of(view), stale=not view.section.ok)
        self.redraw()

    def no_production(self, stage: str) -> None:
        self.view = None
        self.set_sections({})
        self.query_one(LiveCharts).set_charts([])
        self.show(
            Text(f"nothing in {stage} yet: no live metrics to show", style=self.palette.muted)
        )
        self.query_one(LiveCharts).display = False

    def body(self) -> RenderableType | None:
        if self.view is None:
            return None
        return health_line(self.view, self.palette, self.now())
