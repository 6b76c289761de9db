"""Themes are data: TOML files in ``themes/`` (and the user's config folder) become Textual themes.

A file names its colours under ``[colors]`` and the console's own semantic colours (better,
worse, muted, stage colours) under ``[variables]``; unknown keys are errors naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.theme import Theme

DEFAULT_THEME = "dark"

# Colours every console theme may set; the defaults keep third-party Textual themes usable.
SEMANTIC_DEFAULTS: dict[str, str] = {
    "better": "#4EBF71",
    "worse": "#ba3c5b",
    "muted": "#808080",
    "stage-production": "#ffa62b",
    "stage-staging": "#0178D4",
    "stale": "#808080",
}

COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "success",
    "warning",
    "error",
)
TOP_KEYS = ("name", "description", "dark", "colors", "variables")


class ThemeFileError(ValueError):
    """A theme file can not be used; the message names the file and the key."""


@dataclass(frozen=True)
class ThemeSpec:
    """A parsed theme file."""

    name: str
    description: str
    dark: bool
    colors: dict[str, str]
    variables: dict[str, str]
    source: Path | None = None

    def to_textual(self) -> Theme:
        from textual.theme import Theme

        return Theme(
            name=self.name,
            dark=self.dark,
            variables={**SEMANTIC_DEFAULTS, **self.variables},
            **self.colors,  # type: ignore[arg-type]
        )


def theme_dirs() -> list[Path]:
    """Where themes are looked for, later ones overriding earlier ones by name."""
    here = Path(__file__).resolve()
    dirs = [
        here.parents[2] / "themes",  # a source checkout
        here.parents[1] / "_themes",  # the installed wheel (force-included)
    ]
    try:
        from platformdirs import user_config_dir

        dirs.append(Path(user_config_dir("cd4ml-console")) / "themes")
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        pass
    return dirs


def parse_theme(text: str, source: Path | None = None) -> ThemeSpec:
    """Parse one theme file; raise ThemeFileError naming the file and key on a problem."""
    label = str(source) if source else "<theme>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"{label}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ThemeFileError(f"{label}: {unknown[0]}: unknown key; use {', '.join(TOP_KEYS)}")
    name = data.get("name") or (source.stem if source else "")
    if not isinstance(name, str) or not name:
        raise ThemeFileError(f"{label}: name: give the theme a name")
    colors = data.get("colors", {})
    if not isinstance(colors, dict) or "primary" not in colors:
        raise ThemeFileError(f"{label}: colors.primary: required (a colour like '#5fa8d3')")
    bad = sorted(set(colors) - set(COLOR_KEYS))
    if bad:
        raise ThemeFileError(
            f"{label}: colors.{bad[0]}: unknown colour; use {', '.join(COLOR_KEYS)}"
        )
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{label}: variables: must be a table of name = colour")
    from textual.color import Color, ColorParseError

    for section, values in (("colors", colors), ("variables", variables)):
        for key, value in values.items():
            if not isinstance(value, str):
                raise ThemeFileError(f"{label}: {section}.{key}: must be a string")
            if section == "colors" or key in SEMANTIC_DEFAULTS:
                try:
                    Color.parse(value)
                except ColorParseError:
                    raise ThemeFileError(
                        f"{label}: {section}.{key}: {value!r} is not a colour"
                    ) from None
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{label}: dark: must be true or false")
    return ThemeSpec(
        name=name,
        description=str(data.get("description", "")),
        dark=dark,
        colors=dict(colors),
        variables=dict(variables),
        source=source,
    )


def load_themes(dirs: list[Path] | None = None) -> tuple[dict[str, ThemeSpec], list[str]]:
    """All usable themes by name, and the problems found (one sentence each)."""
    themes: dict[str, ThemeSpec] = {}
    problems: list[str] = []
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                spec = parse_theme(path.read_text(encoding="utf-8"), path)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{path}: can not read theme: {exc}")
                continue
            except ThemeFileError as exc:
                problems.append(str(exc))
                continue
            themes[spec.name] = spec
    return themes, problems
