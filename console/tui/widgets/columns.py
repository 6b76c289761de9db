"""Columns and cells of the virtualised table: fitting columns to a width, cells to segments;
and lines of cells cut to the width, for long panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

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
    else:
        plain, style, spans = value.plain, value.style, value.spans
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


KEEP = 1000
"""The priority of a column that never goes (a waiting request, a version's worst delta)."""


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
    # A stand-in: shown only while one of these columns is hidden (e.g. the worst of the
    # metric columns that did not fit), never counted as hidden itself.
    stands_for: tuple[str, ...] = ()


def ranked(columns: Sequence[Column], priorities: Mapping[str, int]) -> tuple[Column, ...]:
    """``columns`` with each one's priority taken from ``priorities`` (one table per screen,
    so a new column takes its place by one line there); a column missing from it is an error."""
    missing = [c.key for c in columns if c.key not in priorities]
    if missing:
        raise KeyError(f"no priority for column(s) {', '.join(missing)}")
    return tuple(replace(c, priority=priorities[c.key]) for c in columns)


OPTIONAL = 50  # columns below this priority are dropped before others shrink


def fit_columns(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    """Pick and size the columns for ``width`` cells (one space between columns)."""
    shown = list(columns)

    def need(cols: Sequence[Column]) -> int:
        return sum(c.min_width or c.width for c in cols) + max(0, len(cols) - 1)

    def preferred(cols: Sequence[Column]) -> int:
        return sum(c.width for c in cols) + max(0, len(cols) - 1)

    def droppable(c: Column) -> bool:
        return c.priority < KEEP

    # Optional columns go before anything shrinks; then shrink; then drop more if needed.
    while preferred(shown) > width and any(c.priority < OPTIONAL for c in shown):
        shown.remove(min((c for c in shown if c.priority < OPTIONAL), key=lambda c: c.priority))
    while len(shown) > 1 and need(shown) > width and any(droppable(c) for c in shown):
        victim = min(
            (c for c in shown if droppable(c)), key=lambda c: (c.priority, -shown.index(c))
        )
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


@dataclass(frozen=True)
class Layout:
    """The columns shown at one width, the ones hidden (most important first), and which
    hidden column the user asked to see (``reveal``, 0: none)."""

    shown: list[tuple[Column, int]]
    hidden: tuple[Column, ...]
    reveal: int = 0
    choices: int = 0  # how many hidden columns ``reveal`` cycles through

    def marker(self, key: str) -> str:
        """'+3>': how many columns are hidden and the key that cycles them ('' when none)."""
        return marker(len(self.hidden), key)


def marker(hidden: int, key: str) -> str:
    return f"+{hidden}{key}" if hidden else ""


def _fit_with_stand_ins(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    plain = [c for c in columns if not c.stands_for]
    fitted = fit_columns(plain, width)
    shown = {c.key for c, _ in fitted}
    wanted = [c for c in columns if not c.stands_for or any(k not in shown for k in c.stands_for)]
    return fitted if len(wanted) == len(plain) else fit_columns(wanted, width)


def layout_columns(
    columns: Sequence[Column], width: int, reveal: int = 0, *, key: str = ">"
) -> Layout:
    """Fit ``columns`` into ``width``, keeping room for the hidden-columns marker when some do
    not fit. ``reveal`` n > 0 shows the n-th hidden column (by priority) in place of others:
    the marker's key steps n through every hidden column and back to 0."""
    fitted = _fit_with_stand_ins(columns, width)
    plain = [c for c in columns if not c.stands_for]
    hidden = _hidden(plain, fitted)
    if not hidden:
        return Layout(fitted, ())
    if not _room_in_last_label(fitted, len(marker(len(hidden), key)) + 1):
        for digits in (1, 2):  # room for the marker and a space before it
            room = max(1, width - len(marker(10 ** (digits - 1), key)) - 1)
            fitted = _fit_with_stand_ins(columns, room)
            hidden = _hidden(plain, fitted)
            if len(hidden) < 10:
                break
    reveal = reveal if 0 <= reveal <= len(hidden) else 0
    if reveal:
        wanted = hidden[reveal - 1]
        boosted = [replace(c, priority=KEEP - 1) if c is wanted else c for c in columns]
        fitted = _fit_with_stand_ins(boosted, room)
        fitted = [(_original(c, columns), w) for c, w in fitted]
    return Layout(fitted, _hidden(plain, fitted), reveal, len(hidden))


def _room_in_last_label(fitted: Sequence[tuple[Column, int]], cells: int) -> bool:
    """Whether the marker fits in the header over the last column: a left-aligned flex
    column (a reason, a name) wider than its label by ``cells`` (nothing else gives way)."""
    if not fitted:
        return False
    last, width = fitted[-1]
    return last.flex and last.align == "left" and width >= cell_len(last.label) + cells


def _original(column: Column, columns: Sequence[Column]) -> Column:
    return next(c for c in columns if c.key == column.key)


def _hidden(plain: Sequence[Column], fitted: Sequence[tuple[Column, int]]) -> tuple[Column, ...]:
    shown = {c.key for c, _ in fitted}
    missing = [c for c in plain if c.key not in shown]
    return tuple(sorted(missing, key=lambda c: -c.priority))


Part = tuple[str, Style | None]
ELLIPSIS = "\u2026"


class CroppedLines:
    """Lines of (text, style) parts, each cut to the width with an ellipsis and never wrapped.

    For long panel bodies that Textual renders again on every resize (once to measure the
    height, once to draw): a Rich Table or a no-wrap Text of the same lines takes 5-10x longer,
    most of it cutting each line cell by cell."""

    def __init__(self, lines: Sequence[Sequence[Part]]) -> None:
        self.lines = lines
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
