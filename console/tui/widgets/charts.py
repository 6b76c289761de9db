"""Live metric charts drawn with plotext (imported on first draw, never at app start).

plotext keeps global state, so charts are only drawn on the UI thread; the widget caches its
drawing per (data, size, theme) so a refresh with the same data costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from console.tui import format as fmt
from console.tui.palette import Palette, palette_of


def _plot_text(
    kind: str,
    xs: Sequence[float],
    ys: Sequence[float],
    width: int,
    height: int,
    title: str,
    yticks: tuple[list[float], list[str]] | None = None,
) -> str:
    """A colourless, frameless chart as text, through plotext's 6.x figure API or 5.x functions."""
    import plotext as plt

    bins = max(4, min(12, width // 5))
    figure = getattr(plt, "figure", None)
    if figure is not None and hasattr(figure, "signal"):
        figure.clear()
        figure.plot_size(width, height)
        if kind == "hist":
            figure.draw(figure.hist(list(ys), bins=bins))
        else:
            signal = figure.signal(list(xs), list(ys), marker="braille")
            signal.lines()
            figure.draw(signal)
            figure.ruler("x").frequency(0)
            figure.axes(False)
            if yticks is not None:
                figure.ruler("y").ticks(*yticks)
        if kind == "hist" or yticks is None:
            figure.ruler("y").frequency(2)
        figure.title(title)
        text = str(figure.build().string(colorless=True))
    else:  # plotext 5.x
        plt.clf()
        plt.plotsize(width, height)
        plt.theme("clear")
        if kind == "hist":
            plt.hist(list(ys), bins=bins)
        else:
            plt.plot(list(xs), list(ys), marker="braille")
            plt.xfrequency(0)
            plt.frame(False)
            if yticks is not None:
                plt.yticks(*yticks)
        plt.title(title)
        text = str(plt.uncolorize(plt.build()))
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _is_mark(ch: str) -> bool:
    return "\u2800" <= ch <= "\u28ff" or ch in "█▇▆▅▄▃▂▁▀▌▐▖▗▘▙▚▛▜▝▞▟"


def colour_chart(text: str, line: Style, axis: Style) -> Text:
    """Colour the data marks (braille dots, blocks) of a colourless chart; the rest stays quiet."""
    out = Text(no_wrap=True, end="")
    for row in text.splitlines():
        run: list[str] = []
        run_mark = False
        for ch in row:
            mark = _is_mark(ch)
            if mark is not run_mark and run:
                out.append("".join(run), style=line if run_mark else axis)
                run = []
            run_mark = mark
            run.append(ch)
        if run:
            out.append("".join(run), style=line if run_mark else axis)
        out.append("\n")
    out.rstrip()
    return out


@dataclass(frozen=True)
class Chart:
    """One series to draw: which metric, its label, line or histogram, and the values."""

    metric: str
    label: str
    kind: str = "line"
    values: tuple[float, ...] = ()
    step_seconds: float = 15.0


def value_text(metric: str, value: float | None) -> str:
    if metric == "latency_p95_ms":
        return fmt.latency(value)
    if metric == "error_rate":
        return fmt.percent(value)
    if metric == "traffic_rps":
        return fmt.rps(value)
    return fmt.number(value)


def draw_chart(chart: Chart, width: int, height: int, pal: Palette) -> Text:
    """A chart in ``width`` x ``height`` cells; one spark line when there is no room."""
    values = chart.values
    last = values[-1] if values else None
    now = value_text(chart.metric, last)
    if not values:
        return Text(f"{chart.label}: no data", style=pal.muted, no_wrap=True, overflow="ellipsis")
    if height < 4 or width < 24:
        text = Text(no_wrap=True, end="", overflow="ellipsis")
        text.append(f"{chart.label[:15]:<16}", style=pal.muted)
        text.append(f"{now:>7}  ", style=pal.bold)
        text.append(fmt.spark(values, max(4, width - 25)), style=pal.primary)
        return text
    span = chart.step_seconds * max(0, len(values) - 1)
    title = f"{chart.label} · now {now} · last {fmt.duration(span)}"
    n = len(values)
    xs = [-(n - 1 - i) * chart.step_seconds / 60 for i in range(n)]
    lo, hi = min(values), max(values)
    yticks = (
        ([lo, hi], [value_text(chart.metric, lo), value_text(chart.metric, hi)])
        if hi > lo
        else None
    )
    plot = _plot_text(chart.kind, xs, values, width, height, title, yticks)
    return colour_chart(plot, pal.primary, pal.muted)


class LiveCharts(Widget):
    """The live series drawn side by side (2x2 when wide, stacked when narrow) in one widget."""

    DEFAULT_CSS = """
    LiveCharts { height: 1fr; min-height: 4; background: $surface; }
    LiveCharts.-stale { text-opacity: 60%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.charts: list[Chart] = []
        self._cache: tuple[Any, RenderableType] | None = None

    def set_charts(self, charts: list[Chart], *, stale: bool = False) -> None:
        self.charts = charts
        self.set_class(stale, "-stale")
        self.refresh()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.refresh())

    def layout_for(self, width: int, height: int) -> tuple[int, int, int]:
        """(columns, chart width, chart height) for this size."""
        count = max(1, len(self.charts))
        columns = 2 if width >= 80 and count > 1 else 1
        rows = -(-count // columns)
        chart_width = (width - 2 * (columns - 1)) // columns
        return columns, chart_width, max(1, height // rows)

    def render(self) -> RenderableType:
        width, height = self.size.width, self.size.height
        pal = palette_of(self.app)
        key = (tuple(self.charts), width, height, self.app.theme)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        columns, cw, ch = self.layout_for(width, height)
        if ch < 4:
            columns, cw, ch = 1, width, 1
        grid = Table.grid(padding=(0, 2 if columns > 1 else 0))
        for _ in range(columns):
            grid.add_column(width=cw, no_wrap=True)
        drawn = [draw_chart(c, cw, ch, pal) for c in self.charts]
        for start in range(0, len(drawn), columns):
            row = drawn[start : start + columns]
            grid.add_row(*row, *([""] * (columns - len(row))))
        self._cache = (key, grid)
        return grid
