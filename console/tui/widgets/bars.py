"""One-line bars (the filter input, the title bar) and a guard for screen workers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def tolerate_teardown(method: F) -> F:
    """For screen workers: data that arrives while the screen is being torn down is dropped."""

    @functools.wraps(method)
    async def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except NoMatches:  # the screen's own widgets are gone: it is being closed
            log.debug("%s: dropped a late update (screen closing)", method.__qualname__)
            return None

    return guarded  # type: ignore[return-value]


def follow_theme(node: Any, redraw: Callable[[], object]) -> None:
    """Call ``redraw`` after every theme change: text drawn with the palette (titles, detail
    bars) keeps the colours it was drawn in until it is drawn again."""

    def changed(_theme: object) -> None:
        if node.is_attached:
            redraw()

    node.app.theme_changed_signal.subscribe(node, changed)


class FilterBar(Input):
    """The `/` filter: filters as you type; Enter keeps the filter, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False),
    ]

    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $panel;
    }
    FilterBar.-open { display: block; }
    FilterBar:focus { border: none; background-tint: $primary 10%; }
    """

    class Closed(Message):
        """The bar was closed; ``cleared`` when the filter was dropped."""

        def __init__(self, bar: FilterBar, cleared: bool) -> None:
            super().__init__()
            self.bar = bar
            self.cleared = cleared

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, placeholder: str, *, id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)
        self._back_to: Widget | None = None  # what had the focus before the bar opened

    def open(self) -> None:
        """Show the bar and take the focus at once (``focus()`` would wait for the queue): the
        keys typed right after `/` (fast, or pasted: "/prod") are the bar's, not the screen's
        (where `p` is Promote)."""
        back = self.screen.focused
        if back is not self:
            self._back_to = back
        self.add_class("-open")
        self.screen.set_focus(self)

    def close(self, *, cleared: bool) -> None:
        """Hide the bar and give the focus back at once, for the same reason: "/chu⏎⏎" opens
        the model (the second Enter is the list's, not the bar's)."""
        self.remove_class("-open")
        back = self._back_to
        if self.has_focus and back is not None and back.is_attached:
            self.screen.set_focus(back)
        self.post_message(self.Closed(self, cleared))

    def action_clear(self) -> None:
        self.value = ""
        self.close(cleared=True)

    async def action_submit(self) -> None:
        self.close(cleared=not self.value)


class TitleBar(Static):
    """The top line of a screen: where you are on the left, the state of things on the right."""

    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """
