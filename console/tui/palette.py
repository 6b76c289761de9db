"""Rich styles for the current theme's semantic colours (better, worse, stages, ...).

Widgets that draw with Rich (panels, the line-API tables) take their colours from here, so a
theme switch recolours them; meaning never rests on colour alone (see console.tui.format).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.style import Style

from console.tui.themes import SEMANTIC_DEFAULTS

if TYPE_CHECKING:
    from textual.app import App


def _style(variables: dict[str, str], name: str, **extra: Any) -> Style:
    value = variables.get(name) or SEMANTIC_DEFAULTS.get(name, "")
    try:
        from textual.color import Color

        color = Color.parse(value).rich_color if value else None
    except Exception:  # an odd theme value must not break drawing
        color = None
    return Style(color=color, **extra)


@dataclass(frozen=True)
class Palette:
    """The styles the console draws with."""

    better: Style
    worse: Style
    muted: Style
    stale: Style
    ok: Style
    warn: Style
    err: Style
    accent: Style
    primary: Style
    production: Style
    staging: Style
    heading: Style
    bold: Style

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> Palette:
        return cls(
            better=_style(variables, "better"),
            worse=_style(variables, "worse"),
            muted=_style(variables, "muted"),
            stale=_style(variables, "stale", italic=True),
            ok=_style(variables, "success"),
            warn=_style(variables, "warning"),
            err=_style(variables, "error"),
            accent=_style(variables, "accent"),
            primary=_style(variables, "primary"),
            production=_style(variables, "stage-production", bold=True),
            staging=_style(variables, "stage-staging"),
            heading=_style(variables, "primary", bold=True),
            bold=Style(bold=True),
        )

    def stage(self, name: str, production: str) -> Style:
        return self.production if name == production else self.staging

    def verdict(self, better: bool | None) -> Style:
        if better is None:
            return self.muted
        return self.better if better else self.worse

    def ci(self, state: str) -> Style:
        return {
            "success": self.ok,
            "failure": self.err,
            "running": self.warn,
            "unknown": self.warn,
        }.get(state, self.muted)


_cache: dict[tuple[str, int], Palette] = {}


def palette_of(app: App[Any]) -> Palette:
    """The palette of ``app``'s current theme (cached per theme)."""
    variables = getattr(app, "theme_variables", None) or {}
    key = (str(getattr(app, "theme", "")), id(variables))
    found = _cache.get(key)
    if found is None:
        if len(_cache) > 32:
            _cache.clear()
        found = _cache[key] = Palette.from_variables(variables)
    return found
