"""A panel fed by one or more backends: shows its content, or dims itself with the reason.

A failing backend dims only its own panel: the status line says what failed in words and how
old the data still shown is; ``r`` retries. A panel never talks to a backend itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, cast

from rich.console import Group, RenderableType
from rich.style import Style
from rich.styled import Styled
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.tui.format import problem_line
from console.tui.palette import Palette, palette_of

if TYPE_CHECKING:
    from console.services.overview import Section
    from console.tui.app import ConsoleApp


class Panel(VerticalScroll, can_focus=True):
    """Base of the model screen's panels: a status line over a scrollable body (one widget)."""

    kinds: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str] = ""
    help_group = "panel"

    DEFAULT_CSS = """
    Panel {
        height: 1fr;
        background: $surface;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    Panel:focus { background-tint: $foreground 3%; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = self.title
        self._sections: dict[str, Section] = {}
        self._renderable: RenderableType = Text("loading…", style="italic")
        self._note = ""
        self.problems: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(self._renderable, classes="panel-body")

    @property
    def console_app(self) -> ConsoleApp:
        """The app, typed (``self.app`` is any Textual app)."""
        return cast("ConsoleApp", self.app)

    @property
    def palette(self) -> Palette:
        return palette_of(self.app)

    def now(self) -> datetime:
        return self.console_app.clock()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.redraw())

    def show(self, renderable: RenderableType) -> None:
        """Replace the body."""
        self._renderable = renderable
        self._paint()

    def show_loading(self, what: str = "loading…") -> None:
        self.show(Text(what, style="italic"))

    def note(self, text: str = "") -> None:
        """A muted one-line note above the body (e.g. 'no audit backend configured')."""
        self._note = text
        self._paint()

    def set_sections(
        self, sections: Mapping[str, Section], kinds: Sequence[str] | None = None
    ) -> None:
        """Dim the panel and say why when any of its backend kinds failed."""
        kinds = tuple(kinds if kinds is not None else self.kinds)
        self._sections = {k: sections[k] for k in kinds if k in sections}
        self.problems = [problem_line(s, self.now()) for s in self._sections.values() if s.error]
        self.set_class(bool(self.problems), "-problem")

    def _paint(self) -> None:
        if not self.is_mounted:
            return
        pal = self.palette
        parts: list[RenderableType] = [Text("⚠ " + p, style=pal.warn) for p in self.problems]
        if self._note:
            parts.append(Text(self._note, style=pal.muted))
        body = self._renderable
        parts.append(Styled(body, Style(dim=True)) if self.problems else body)
        self.query_one(".panel-body", Static).update(Group(*parts) if len(parts) > 1 else body)

    def body(self) -> RenderableType | None:
        """The body drawn from the panel's data; None keeps what is shown. Subclasses override."""
        return None

    def redraw(self) -> None:
        """Re-render from the last data (after new data, new sections or a theme change)."""
        if self._sections:
            self.set_sections(self._sections)
        if self.is_mounted:
            drawn = self.body()
            if drawn is not None:
                self._renderable = drawn
        self._paint()
