"""A virtualised table on Textual's line API: only the visible lines are ever rendered.

The stock DataTable measures every cell before the first frame; this table knows nothing but
row keys and asks a renderer for the cells of a row when that row scrolls into view. Rendered
lines are cached per (key, cursor, mark) and invalidated per key, so a cursor move re-renders
two lines and a page move re-renders one screenful.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.tui.widgets.columns import (
    BOLD,
    GAP,
    Cell,
    Column,
    Layout,
    cell_segments,
    fit_columns,
    layout_columns,
)

RowRenderer = Callable[[Hashable], Mapping[str, Cell]]

__all__ = ["Cell", "Column", "RowRenderer", "VirtualTable", "fit_columns"]


class VirtualTable(ScrollView, can_focus=True):
    """Rows are keys; cells come from ``renderer(key)`` only for visible rows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First row", show=False),
        Binding("end,G", "last", "Last row", show=False),
        Binding("enter", "select", "Open", show=False),
        Binding("space", "toggle_mark", "Mark for compare", show=False),
        # Shown only while columns are hidden (check_action): the header's "+N >" says how many.
        Binding(
            "greater_than_sign",
            "cycle_columns",
            "More columns",
            key_display=">",
            id="table.cycle-columns",
        ),
    ]
    COLUMNS_KEY = ">"

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vtable--header",
        "vtable--cursor",
        "vtable--cursor-blurred",
        "vtable--empty",
        "vtable--marker",
    }

    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    VirtualTable > .vtable--header { color: $text-muted; background: $panel; text-style: bold; }
    VirtualTable > .vtable--cursor { background: $primary 40%; text-style: bold; }
    VirtualTable > .vtable--cursor-blurred { background: $primary 18%; }
    VirtualTable > .vtable--empty { color: $text-muted; text-style: italic; }
    VirtualTable > .vtable--marker { color: $accent; text-style: bold reverse; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)
    help_group = "table"

    class CursorMoved(Message):
        """The highlighted row changed."""

        def __init__(self, table: VirtualTable, key: Hashable | None, index: int) -> None:
            super().__init__()
            self.table = table
            self.key = key
            self.index = index

        @property
        def control(self) -> VirtualTable:
            return self.table

    class RowSelected(Message):
        """Enter (or a double click) on a row."""

        def __init__(self, table: VirtualTable, key: Hashable) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.table

    class ViewportChanged(Message):
        """The set of visible rows changed (after scrolling, resizing or new rows)."""

        def __init__(self, table: VirtualTable, keys: list[Hashable]) -> None:
            super().__init__()
            self.table = table
            self.keys = keys

        @property
        def control(self) -> VirtualTable:
            return self.table

    class MarksChanged(Message):
        """Rows marked with space changed."""

        def __init__(self, table: VirtualTable, marked: list[Hashable]) -> None:
            super().__init__()
            self.table = table
            self.marked = marked

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        renderer: RowRenderer,
        *,
        markable: bool = False,
        empty_text: str = "nothing to show",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.renderer = renderer
        self.markable = markable
        self.empty_text = empty_text
        self._keys: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self.marked: list[Hashable] = []
        self._cache: dict[tuple[Hashable, int, bool], Strip] = {}
        self._layout: tuple[int, Layout] | None = None
        self.reveal = 0  # which hidden column `>` shows (0: none), see columns.layout_columns
        self._some_hidden = False
        self._header: Strip | None = None
        self._last_viewport: tuple[int, int] = (-1, -1)
        self._style_cache: dict[str, Style] | None = None

    # -- data --------------------------------------------------------------------------------

    @property
    def keys(self) -> list[Hashable]:
        return self._keys

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_key(self) -> Hashable | None:
        return self._keys[self.cursor] if 0 <= self.cursor < len(self._keys) else None

    def set_rows(self, keys: Sequence[Hashable], *, cursor_key: Hashable | None = None) -> None:
        """Replace the rows; the cursor stays on its key when that key is still there."""
        keep = cursor_key if cursor_key is not None else self.cursor_key
        self._keys = list(keys)
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.marked = [k for k in self.marked if k in self._index]
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        new = self._index.get(keep, 0) if keep is not None else 0
        self._set_cursor(min(new, max(0, len(self._keys) - 1)), force=True)
        self.refresh()
        self._viewport_changed(force=True)

    def refresh_keys(self, keys: Sequence[Hashable] | None = None) -> None:
        """Re-render the rows of ``keys`` (all rows when None) if they are visible."""
        if keys is None:
            self._cache.clear()
            self.refresh()
            return
        top = int(self.scroll_y)
        bottom = top + self._page()
        for key in keys:
            for state in ((key, 0, False), (key, 0, True), (key, 1, False), (key, 1, True)):
                self._cache.pop(state, None)
            i = self._index.get(key)
            if i is not None and top <= i < bottom:
                self.refresh_line(i + 1)

    def visible_keys(self, margin: int = 0) -> list[Hashable]:
        top = max(0, int(self.scroll_y) - margin)
        return self._keys[top : int(self.scroll_y) + self._page() + margin]

    def move_to(self, key: Hashable) -> bool:
        """Put the cursor on ``key``; False when there is no such row."""
        i = self._index.get(key)
        if i is None:
            return False
        self._set_cursor(i)
        return True

    # -- cursor ------------------------------------------------------------------------------

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _set_cursor(self, index: int, *, force: bool = False) -> None:
        index = max(0, min(index, len(self._keys) - 1)) if self._keys else 0
        old = self.cursor
        if index == old and not force:
            return
        self.set_reactive(VirtualTable.cursor, index)
        self.refresh_line(old + 1)
        self.refresh_line(index + 1)
        self._scroll_to_cursor()
        self.post_message(self.CursorMoved(self, self.cursor_key, index))

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_y)
        page = self._page()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False)

    def action_cursor_up(self) -> None:
        self._set_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._set_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        page = self._page()
        self.scroll_to(y=max(0, int(self.scroll_y) - page), animate=False)
        self._set_cursor(self.cursor - page)

    def action_page_down(self) -> None:
        page = self._page()
        self.scroll_to(y=int(self.scroll_y) + page, animate=False)
        self._set_cursor(self.cursor + page)

    def action_first(self) -> None:
        self._set_cursor(0)

    def action_last(self) -> None:
        self._set_cursor(len(self._keys) - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def action_toggle_mark(self) -> None:
        key = self.cursor_key
        if key is None:
            return
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        self.refresh_keys([key])
        self.post_message(self.MarksChanged(self, list(self.marked)))
        self._set_cursor(self.cursor + 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_mark":
            return self.markable
        if action == "cycle_columns":
            return self._some_hidden
        # Columns always fit the width: the inherited horizontal scrolling keys do nothing here.
        return action not in ("scroll_left", "scroll_right", "page_left", "page_right")

    # -- events ------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self._keys):
            self._set_cursor(index)
            if event.chain >= 2:
                self.action_select()

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh_line(self.cursor + 1)

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh_line(self.cursor + 1)

    def on_resize(self) -> None:
        self._layout = None
        self._header = None
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        self._scroll_to_cursor()
        self._viewport_changed()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self.restyle()

    def restyle(self) -> None:
        """Forget rendered lines (after a theme or palette change) and redraw."""
        self._header = None
        self._style_cache = None
        self._cache.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header = None
        self._style_cache = None
        self._cache.clear()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self._viewport_changed()

    def _viewport_changed(self, *, force: bool = False) -> None:
        top = int(self.scroll_y)
        span = (top, top + self._page())
        if span == self._last_viewport and not force:
            return
        self._last_viewport = span
        self.post_message(self.ViewportChanged(self, self.visible_keys()))

    # -- rendering ---------------------------------------------------------------------------

    def column_layout(self, width: int | None = None) -> Layout:
        """The columns shown at ``width`` (default: the table's), and the hidden ones."""
        width = self.scrollable_content_region.width if width is None else width
        if (
            self._layout is None
            or self._layout[0] != width
            or self._layout[1].reveal != self.reveal
        ):
            layout = layout_columns(self.columns, width, self.reveal, key=self.COLUMNS_KEY)
            self._layout = (width, layout)
            self.reveal = layout.reveal
            if self._some_hidden != bool(layout.choices):
                self._some_hidden = bool(layout.choices)
                self.call_later(self.refresh_bindings)  # `>` comes or goes in the key bar
        return self._layout[1]

    def _columns(self, width: int) -> list[tuple[Column, int]]:
        return self.column_layout(width).shown

    def _line(
        self,
        cells: Mapping[str, Cell],
        width: int,
        style: Style,
        *,
        tail: Sequence[Segment] = (),
    ) -> Strip:
        console = self.app.console
        segments: list[Segment] = []
        layout = self._columns(width)
        last = len(layout) - 1
        used = 0
        for n, (col, w) in enumerate(layout):
            segments.extend(cell_segments(cells.get(col.key, ""), w, col.align, console))
            used += w
            if n < last:
                segments.append(GAP)
                used += 1
        if used < width:
            segments.append(Segment(" " * (width - used)))
        strip = Strip(segments, max(used, width)).crop(0, width)
        if tail:  # over the end of the line: the layout left room there
            room = width - sum(len(t.text) for t in tail)
            strip = Strip([*strip.crop(0, room), *tail], width)
        return strip.apply_style(style)

    def action_cycle_columns(self) -> None:
        """`>`: show the next hidden column (by priority) in place of others; after the last,
        the usual columns again."""
        layout = self.column_layout()
        self.reveal = (layout.reveal + 1) % (layout.choices + 1) if layout.choices else 0
        self._header = None
        self._cache.clear()
        self.refresh()

    def _styles(self) -> dict[str, Style]:
        """The widget's base style and its component styles, computed once per restyle."""
        if self._style_cache is None:
            base = self.rich_style
            self._style_cache = {
                "base": base,
                **{
                    name: base + self.get_component_rich_style(name)
                    for name in self.COMPONENT_CLASSES
                },
            }
        return self._style_cache

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        styles = self._styles()
        base = styles["base"]
        if y == 0:
            if self._header is None or self._header.cell_length != width:
                labels: dict[str, Cell] = {c.key: c.label for c in self.columns}
                marker = self.column_layout(width).marker(self.COLUMNS_KEY)
                tail = [Segment(" "), Segment(marker, styles["vtable--marker"])] if marker else []
                self._header = self._line(labels, width, styles["vtable--header"], tail=tail)
            return self._header
        index = int(self.scroll_y) + y - 1
        if index >= len(self._keys):
            if index == 0 and not self._keys and y == 1:
                text = Text(" " + self.empty_text, no_wrap=True, end="")
                text.truncate(width)
                segs = [Segment(s.text, s.style) for s in text.render(self.app.console)]
                return Strip(segs).adjust_cell_length(width).apply_style(styles["vtable--empty"])
            return Strip.blank(width, base)
        key = self._keys[index]
        is_cursor = index == self.cursor
        marked = key in self.marked if self.marked else False
        cache_key = (key, int(is_cursor), marked)
        strip = self._cache.get(cache_key)
        if strip is None or strip.cell_length != width:
            style = base
            if is_cursor:
                style = styles["vtable--cursor" if self.has_focus else "vtable--cursor-blurred"]
            cells = self.renderer(key)
            if marked:
                cells = {**cells, "mark": ("●", BOLD)}
            strip = self._line(cells, width, style)
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[cache_key] = strip
        return strip
