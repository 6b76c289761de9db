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

OTHER_MARK = "•"  # the second series of a chart (the candidate's stage): dots, not a line


def _plot_text(
    kind: str,
    xs: Sequence[float],
    ys: Sequence[float],
    width: int,
    height: int,
    title: str,
    yticks: tuple[list[float], list[str]] | None = None,
    other: tuple[Sequence[float], Sequence[float]] | None = None,
) -> str:
    """A colourless, frameless chart as text, through plotext's 6.x figure API or 5.x functions;
    ``other`` (xs, ys) is drawn on the same axes with dots."""
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
            if other is not None and other[1]:
                second = figure.signal(list(other[0]), list(other[1]), marker=OTHER_MARK)
                second.lines()
                figure.draw(second)
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
            if other is not None and other[1]:
                plt.plot(list(other[0]), list(other[1]), marker="dot")
            plt.xfrequency(0)
            plt.frame(False)
            if yticks is not None:
                plt.yticks(*yticks)
        plt.title(title)
        text = str(plt.uncolorize(plt.build()))
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _is_mark(ch: str) -> bool:
    return "\u2800" <= ch <= "\u28ff" or ch in "█▇▆▅▄▃▂▁▀▌▐▖▗▘▙▚▛▜▝▞▟"


def colour_chart(text: str, line: Style, axis: Style, other: Style | None = None) -> Text:
    """Colour the data marks (braille dots, blocks; ``other`` the second series' dots) of a
    colourless chart; the rest stays quiet."""
    out = Text(no_wrap=True, end="")

    def kind(ch: str) -> int:
        if other is not None and ch in (OTHER_MARK, "\u2022"):
            return 2
        return 1 if _is_mark(ch) else 0

    styles = {0: axis, 1: line, 2: other or line}
    for row in text.splitlines():
        run: list[str] = []
        run_kind = 0
        for ch in row:
            k = kind(ch)
            if k != run_kind and run:
                out.append("".join(run), style=styles[run_kind])
                run = []
            run_kind = k
            run.append(ch)
        if run:
            out.append("".join(run), style=styles[run_kind])
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
    # A second series on the same time axis (the selected version's stage beside production):
    # minutes before the newest point of either, for both.
    xs: tuple[float, ...] = ()
    other: tuple[float, ...] = ()
    other_xs: tuple[float, ...] = ()
    names: tuple[str, str] = ("", "")


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
        room = max(4, width - 25)
        if not chart.other:
            text.append(fmt.spark(values, room), style=pal.primary)
            return text
        half = max(4, (room - 12) // 2)  # production, then the other stage, dotted apart
        text.append(fmt.spark(values, half), style=pal.primary)
        text.append(f" {OTHER_MARK} ", style=pal.accent)
        text.append(f"{value_text(chart.metric, chart.other[-1]):>7} ", style=pal.bold)
        text.append(fmt.spark(chart.other, half), style=pal.accent)
        return text
    span = chart.step_seconds * max(0, len(values) - 1)
    n = len(values)
    xs = list(chart.xs) or [-(n - 1 - i) * chart.step_seconds / 60 for i in range(n)]
    paired = chart.kind != "hist" and bool(chart.other)
    if paired:
        theirs = value_text(chart.metric, chart.other[-1])
        first, second = chart.names
        title = f"{chart.label} · {first} {now} · {second} {theirs} {OTHER_MARK}"
    else:
        title = f"{chart.label} · now {now} · last {fmt.duration(span)}"
    shown = [*values, *(chart.other if paired else ())]
    lo, hi = min(shown), max(shown)
    yticks = (
        ([lo, hi], [value_text(chart.metric, lo), value_text(chart.metric, hi)])
        if hi > lo
        else None
    )
    other = (chart.other_xs, chart.other) if paired else None
    plot = _plot_text(chart.kind, xs, values, width, height, title, yticks, other)
    return colour_chart(plot, pal.primary, pal.muted, pal.accent if paired else None)


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
