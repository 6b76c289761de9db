"""The key bar: the current screen's keys on one line, drawn as text.

Textual's Footer mounts a widget per key; on the model screen (a dozen keys) that was a third
of the time from Enter to the versions table. One Static draws the same line in a fraction,
still follows focus and ``check_action`` (hidden or dimmed keys), and a click on a key
presses it. On a narrow screen the last keys give way, but never ``? Help``.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import Static

from console.tui.palette import palette_of

KEPT = "help"  # the action that stays on a narrow screen: it lists every key of the screen


def describe(screen: Any, binding: Any) -> str:
    """What ``binding`` does on ``screen`` now: the screen's ``key_description`` (Esc that
    first clears a filter says so), else the binding's own description."""
    said = getattr(screen, "key_description", None)
    return str(said(binding)) if callable(said) else str(binding.description)


def _fit(items: list[Any], width: int) -> list[Any]:
    """The (key, words, binding, enabled) items that fit in ``width`` cells, in order; when they do not
    all fit, the last ones go first, but the help key always stays (it lists the others)."""

    def cells(some: list[Any]) -> int:
        return sum(cell_len(k) + 1 + cell_len(d) + 2 for k, d, b, _ in some) - 2

    if width <= 0 or cells(items) <= width:
        return items
    kept = [i for i in items if i[2].action == KEPT]
    rest = [i for i in items if i[2].action != KEPT]
    while rest and cells(rest + kept) > width:
        rest.pop()
    return rest + kept


class KeyBar(Static):
    """Key hints of the active bindings of the screen: ``key`` description, left to right."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._spans: list[tuple[int, int, str]] = []  # (start, end, key) for clicks

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self.refresh()

    def _bindings_changed(self, screen: Any) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh()

    def render(self) -> Text:
        pal = palette_of(self.app)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        self._spans = []
        seen: set[str] = set()
        palette_key = getattr(self.app, "COMMAND_PALETTE_BINDING", "")
        shown = []
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            if binding.key == palette_key:
                continue  # drawn last, on its own
            shown.append((binding, enabled))
        if palette_key in self.screen.active_bindings and self.app.ENABLE_COMMAND_PALETTE:
            _node, binding, enabled, _tooltip = self.screen.active_bindings[palette_key]
            shown.append((binding, enabled))
        items = [
            (self.app.get_key_display(binding), describe(self.screen, binding), binding, enabled)
            for binding, enabled in shown
        ]
        width = self.content_size.width or self.size.width
        for key, words, binding, enabled in _fit(items, width):
            if text:
                text.append("  ")
            start = len(text)
            text.append(key, style=(pal.accent + pal.bold) if enabled else pal.muted)
            text.append(" " + words, style="" if enabled else pal.muted)
            self._spans.append((start, len(text), binding.key))
        return text

    def on_click(self, event: events.Click) -> None:
        x = event.x - 1  # the left padding
        for start, end, key in self._spans:
            if start <= x < end:
                event.stop()
                self.app.simulate_key(key)
                return
