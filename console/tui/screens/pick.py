"""A small chooser (e.g. which stage to promote into): arrows and Enter pick, Esc cancels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class PickScreen(ModalScreen[str | None]):
    """Returns the id of the chosen option, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PickScreen { align: center middle; background: $background 60%; }
    PickScreen OptionList, PickScreen OptionList:focus {
        width: 64;
        max-width: 100%;
        height: auto;
        max-height: 80%;
        border: round $primary;
        border-title-color: $primary;
        border-subtitle-color: $text-muted;
        background: $surface;
    }
    """

    def __init__(self, title: str, options: Sequence[tuple[str, str]], *, chosen: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.options = list(options)  # (id, label)
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        # labels and titles hold names from backends: plain text, never markup
        menu = OptionList(*(Option(Text(label), id=key) for key, label in self.options))
        menu.border_title = Text(self.title_text)
        menu.border_subtitle = "enter picks · esc cancels"
        yield menu

    def on_mount(self) -> None:
        menu = self.query_one(OptionList)
        keys = [k for k, _ in self.options]
        menu.highlighted = keys.index(self.chosen) if self.chosen in keys else 0
        menu.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
