"""`?`: every key that works on the screen below, generated from the bindings (never by hand)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from console.tui.format import BETTER, CI_GLYPHS, CI_WORDS, WORSE
from console.tui.palette import palette_of
from console.tui.screens.base import ConsoleModal
from console.tui.widgets.keybar import describe


def help_entries(app: App[Any], screen: Screen[Any]) -> list[tuple[str, str, str]]:
    """(keys, description, where) for every described binding active on ``screen``."""
    grouped: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or binding.system:
            continue
        node = active.node
        if node is app:
            where = "everywhere"
        elif node is screen:
            where = "this screen"
        else:
            where = str(getattr(node, "help_group", type(node).__name__))
        group = (describe(screen, binding), where)
        if group not in grouped:
            grouped[group] = []
            order.append(group)
        shown = app.get_key_display(
            Binding(
                key, binding.action, key_display=binding.key_display if key == binding.key else None
            )
        )
        if shown not in grouped[group]:
            grouped[group].append(shown)
    return [(" ".join(grouped[g]), g[0], g[1]) for g in order]


class HelpScreen(ConsoleModal[None]):
    """A modal listing the keys of the screen it was opened from."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", key_display="esc"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > VerticalScroll {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        border-title-color: $primary;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, below: Screen[Any]) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = Text(
            f"Keys · {getattr(self.below, 'help_title', type(self.below).__name__)}"
        )
        scroll.border_subtitle = "esc closes"
        with scroll:
            yield Static(self._render_help(), id="help-body")

    def _render_help(self) -> Table:
        app = self.console_app
        pal = palette_of(app)
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style=pal.accent, no_wrap=True)
        table.add_column()
        table.add_column(style=pal.muted, no_wrap=True)
        last_where = None
        entries = sorted(help_entries(app, self.below), key=lambda e: _where_rank(e[2]))
        for keys, description, where in entries:
            if where != last_where:
                if last_where is not None:
                    table.add_row("", "", "")
                table.add_row("", Text(where.upper(), style=pal.heading), "")
                last_where = where
            table.add_row(keys, description, "")
        table.add_row("", "", "")
        table.add_row("", Text("READING THE SCREEN", style=pal.heading), "")
        table.add_row(BETTER, "better than production (the metric's direction counts)", "")
        table.add_row(WORSE, "worse than production; the signed number is the raw change", "")
        for state, glyph in CI_GLYPHS.items():
            words = CI_WORDS[state]  # some say "CI" already ("CI runs loading")
            table.add_row(glyph, words if words.startswith("CI ") else f"CI {words}", "")
        table.add_row("⚠", "a backend failed: the panel says why and how old its data is", "")
        table.add_row("+3>", "three columns do not fit this width; > shows them in turn", "")
        table.add_row(
            "WORST", "a version's worst change vs production, while a metric is hidden", ""
        )
        table.add_row("\u2013 n/a", "a gate that does not apply (neither version records it)", "")
        table.add_row(
            "\u203a [x]", "in a dialog: the focused button; a ticked box ([ ] unticked)", ""
        )
        from console.tui.app import ConsoleApp

        off = app.actions.off() if isinstance(app, ConsoleApp) else ""
        if off:
            table.add_row("", Text(f"{off}: a, p and R are off", style=pal.warn), "")
        return table


def _where_rank(where: str) -> int:
    return {"this screen": 0, "everywhere": 2}.get(where, 1)
