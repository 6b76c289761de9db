"""A one-line tab bar for the panels when the terminal is too small to show them all."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from console.tui.palette import palette_of


class TabBar(Widget):
    """`1 Lineage  2 CI  3 Live  4 Audit trail`, the active one highlighted; clickable."""

    DEFAULT_CSS = """
    TabBar { height: 1; background: $panel; padding: 0 1; }
    """

    class Chosen(Message):
        def __init__(self, bar: TabBar, tab: str) -> None:
            super().__init__()
            self.bar = bar
            self.tab = tab

        @property
        def control(self) -> TabBar:
            return self.bar

    def __init__(self, tabs: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tabs = list(tabs)
        self.active = self.tabs[0][0]
        self._spans: list[tuple[int, int, str]] = []

    def activate(self, tab: str) -> None:
        self.active = tab
        self.refresh()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.refresh())

    def render(self) -> Text:
        pal = palette_of(self.app)
        text = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        for n, (key, label) in enumerate(self.tabs, start=1):
            start = text.cell_len + 1  # padding
            if key == self.active:
                text.append(f" {n} {label} ", style=pal.heading + pal.bold)
                text.stylize("reverse", len(text) - len(label) - 4, len(text))
            else:
                text.append(f" {n} ", style=pal.accent)
                text.append(f"{label} ", style=pal.muted)
            self._spans.append((start, text.cell_len + 1, key))
            text.append(" ")
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.post_message(self.Chosen(self, key))
                return
