"""`:` command mode (k9s style): type a model name (with completion), `theme NAME` or `q`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label


class GotoScreen(ModalScreen[str | None]):
    """A one-line prompt at the bottom; returns what was typed, or None on Esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    GotoScreen { align: left bottom; background: $background 0%; }
    GotoScreen > Horizontal {
        height: 1;
        width: 100%;
        background: $panel;
        margin-bottom: 1;
    }
    GotoScreen Label { width: auto; padding: 0 0 0 1; color: $accent; text-style: bold; }
    GotoScreen Input { border: none; height: 1; padding: 0 1; width: 1fr; background: $panel; }
    GotoScreen Input:focus { border: none; }
    """

    def __init__(self, models: Sequence[str]) -> None:
        super().__init__()
        words = [*models, "theme ", "quit", "help"]
        self.suggester = SuggestFromList(words, case_sensitive=False)

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(":")
            yield Input(
                placeholder="model name · theme NAME · q",
                suggester=self.suggester,
                id="goto",
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#goto")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
