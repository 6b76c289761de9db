"""The app's themes: the files found (console.tui.themes), the one asked for (``--theme`` wins
over the config's, which wins over the quick reading of it for the first frame), and switching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from console.tui.themes import DEFAULT_THEME, load_themes

if TYPE_CHECKING:
    from pathlib import Path

    from textual.app import App


class Theming:
    """Registers the theme files on ``app`` and chooses among them."""

    def __init__(self, app: App[Any], asked: str | None, dirs: list[Path] | None = None) -> None:
        self.app = app
        self.asked = asked
        self.specs, self.problems = load_themes(dirs)
        for spec in self.specs.values():
            app.register_theme(spec.to_textual())

    def pick(self, wanted: str) -> str:
        """``wanted`` if there is such a theme, else the default (and a problem to show)."""
        if wanted in self.app.available_themes:
            return wanted
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.specs else "textual-dark"
        self.problems.append(
            f"unknown theme {wanted!r}; using {fallback} "
            f"(available: {', '.join(sorted(self.specs)) or 'none found'})"
        )
        return fallback

    def from_config(self, wanted: str | None) -> None:
        """The first frame used a quick reading of the file; the validated config decides."""
        if self.asked is None and wanted and wanted != self.app.theme:
            self.app.theme = self.pick(wanted)

    def switch(self, name: str) -> bool:
        """Use theme ``name``; say so (or why not) in a notification."""
        if name not in self.app.available_themes:
            self.app.notify(
                f"No theme named {name!r}; try {', '.join(sorted(self.specs))}",
                severity="warning",
            )
            return False
        self.app.theme = name
        self.app.notify(f"Theme: {name}", timeout=2)
        return True
