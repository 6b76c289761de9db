"""The model screen's panels: tabs when space is short, all at once when it is not."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Container

from console.tui.widgets.ci import CIPanel
from console.tui.widgets.lineage import LineagePanel
from console.tui.widgets.live import LivePanel
from console.tui.widgets.panel import Panel
from console.tui.widgets.tabbar import TabBar
from console.tui.widgets.trail import TrailPanel

PANELS: tuple[tuple[str, str], ...] = (
    ("lineage", "Lineage"),
    ("ci", "CI"),
    ("live", "Live"),
    ("trail", "Audit trail"),
)


class PanelDeck(Container):
    """Lineage, CI, Live and Audit trail; which one shows in tab mode is ``active``."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.active = PANELS[0][0]

    def compose(self) -> ComposeResult:
        yield TabBar(PANELS, id="tabs")
        yield LineagePanel(id="lineage", classes="-active")
        yield CIPanel(id="ci")
        yield LivePanel(id="live")
        yield TrailPanel(id="trail")

    def show(self, name: str, *, focus: bool = True) -> None:
        """Make ``name`` the active panel (the visible tab when narrow) and focus it."""
        self.active = name
        for key, _label in PANELS:
            self.query_one(f"#{key}", Panel).set_class(key == name, "-active")
        self.query_one(TabBar).activate(name)
        if focus:
            self.focus_active()

    def cycle(self, step: int) -> None:
        keys = [k for k, _ in PANELS]
        self.show(keys[(keys.index(self.active) + step) % len(keys)])

    def focus_active(self) -> None:
        self.query_one(f"#{self.active}", Panel).focus()

    @on(TabBar.Chosen, "#tabs")
    def _chosen(self, event: TabBar.Chosen) -> None:
        event.stop()
        self.show(event.tab)
