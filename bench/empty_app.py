"""An empty Textual app: the baseline first frame any Textual program pays on this machine."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Static

MARKER = "bench-empty-app-ready"


class EmptyApp(App[None]):
    """One line of text and a footer; `q` quits."""

    BINDINGS = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Static(MARKER)
        yield Footer()


if __name__ == "__main__":
    EmptyApp().run()
