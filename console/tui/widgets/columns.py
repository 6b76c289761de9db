"""Columns and cells of the virtualised table: fitting columns to a width, cells to segments;
and lines of cells cut to the width, for long panels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from console.domain.text import escape_controls, has_controls

Cell = Text | str | tuple[str, Style | str | None]
"""A cell: plain text, (text, style) — the fast path — or a Rich Text with several styles."""

GAP = Segment(" ")
BOLD = Style(bold=True)


def cell_segments(value: Cell, width: int, align: str, console: Any) -> list[Segment]:
    """The segments of one cell, truncated with an ellipsis and padded to ``width``."""
    spans: Any = ()
    if isinstance(value, str):
        plain, style = value, None
    elif isinstance(value, tuple):
        plain, style = value
    elif has_controls(value.plain):  # never raw to the terminal (an audit record keeps them)
        value = Text(escape_controls(value.plain), style=value.style)
        plain, style = value.plain, value.style
    else:
        plain, style, spans = value.plain, value.style, value.spans
    plain = escape_controls(plain)
    length = cell_len(plain)
    if length > width or spans:
        text = value.copy() if isinstance(value, Text) else Text(plain, style=style or "")
        text.truncate(width, overflow="ellipsis")
        length = text.cell_len
        segments = [Segment(s.text, s.style) for s in text.render(console) if s.text]
    else:
        if isinstance(style, str):
            style = Style.parse(style) if style else None
        segments = [Segment(plain, style)] if plain else []
    gap = width - length
    if gap > 0:
        pad = Segment(" " * gap)
        return [pad, *segments] if align == "right" else [*segments, pad]
    return segments


@dataclass(frozen=True)
class Column:
    """One column: preferred width, the width it may shrink to, and how soon it is dropped."""

    key: str
    label: str
    width: int
    min_width: int = 0
    priority: int = 50  # lower priority columns are dropped first when space is short
    align: Literal["left", "right"] = "left"
    flex: bool = False  # takes the space left over (up to max_width)
    max_width: int = 0  # 0: no limit


OPTIONAL = 50  # columns below this priority are dropped before others shrink


def fit_columns(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    """Pick and size the columns for ``width`` cells (one space between columns)."""
    shown = list(columns)

    def need(cols: Sequence[Column]) -> int:
        return sum(c.min_width or c.width for c in cols) + max(0, len(cols) - 1)

    def preferred(cols: Sequence[Column]) -> int:
        return sum(c.width for c in cols) + max(0, len(cols) - 1)

    # Optional columns go before anything shrinks; then shrink; then drop more if needed.
    while preferred(shown) > width and any(c.priority < OPTIONAL for c in shown):
        shown.remove(min((c for c in shown if c.priority < OPTIONAL), key=lambda c: c.priority))
    while len(shown) > 1 and need(shown) > width:
        victim = min(shown, key=lambda c: (c.priority, -shown.index(c)))
        shown.remove(victim)
    widths = {c.key: c.min_width or c.width for c in shown}
    spare = width - need(shown)
    for c in sorted(shown, key=lambda c: -c.priority):
        if spare <= 0:
            break
        grow = min(spare, c.width - widths[c.key])
        if grow > 0:
            widths[c.key] += grow
            spare -= grow
    flex = [c for c in shown if c.flex]
    for i, c in enumerate(flex):
        share = spare // (len(flex) - i) if spare > 0 else 0
        if c.max_width:
            share = max(0, min(share, c.max_width - widths[c.key]))
        widths[c.key] += share
        spare -= share
    return [(c, max(1, widths[c.key])) for c in shown]


Part = tuple[str, Style | None]
ELLIPSIS = "\u2026"


class CroppedLines:
    """Lines of (text, style) parts, each cut to the width with an ellipsis and never wrapped.

    For long panel bodies that Textual renders again on every resize (once to measure the
    height, once to draw): a Rich Table or a no-wrap Text of the same lines takes 5-10x longer,
    most of it cutting each line cell by cell."""

    def __init__(self, lines: Sequence[Sequence[Part]]) -> None:
        # a control character is shown escaped, never sent raw to the terminal
        self.lines = [[(escape_controls(text), style) for text, style in parts] for parts in lines]
        self._widths = [sum(cell_len(text) for text, _ in parts) for parts in lines]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        new_line = Segment.line()
        for n, (parts, total) in enumerate(zip(self.lines, self._widths, strict=True)):
            if n:
                yield new_line
            if total <= width:
                for text, style in parts:
                    yield Segment(text, style)
            else:
                yield from _cut(parts, width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(
            min(1, options.max_width), min(max(self._widths, default=0), options.max_width)
        )


def _cut(parts: Sequence[Part], width: int) -> list[Segment]:
    """The segments of a line longer than ``width``: cut to ``width - 1`` cells plus an ellipsis
    in the style of the part that was cut."""
    out: list[Segment] = []
    room = width - 1
    for text, style in parts:
        n = cell_len(text)
        if n <= room:
            out.append(Segment(text, style))
            room -= n
            continue
        head = set_cell_size(text, room) if room > 0 else ""
        out.append(Segment(head + ELLIPSIS, style))
        return out
    return out  # pragma: no cover - only reached when the line fits after all
