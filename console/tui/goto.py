"""The `:` prompt's commands: a model name (its case, or a unique prefix, will do),
`theme NAME`, `help`, or `q`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


@dataclass(frozen=True)
class GoTo:
    """A `:` command, parsed: what to do, and the theme's or the model's name."""

    kind: Literal["quit", "theme", "help", "model"]
    arg: str = ""


def parse_goto(text: str) -> GoTo | None:
    """What ``text`` asks for; None for nothing typed."""
    words = text.strip().split()
    if not words:
        return None
    head = words[0].lower()
    if head in ("q", "quit", "exit"):
        return GoTo("quit")
    if head == "theme" and len(words) > 1:
        return GoTo("theme", words[1])
    if head in ("help", "h"):
        return GoTo("help")
    return GoTo("model", " ".join(words))


class Navigator:
    """Where the app goes: a model's screen, asked for at start (`cd4ml-console open NAME`),
    by `:`, the palette or Enter on the overview."""

    def __init__(self, app: ConsoleApp, model: str | None, version: str | None) -> None:
        self.app = app
        self.initial_model, self.initial_version = model, version
        self._asked = model  # checked against the registry's list once it arrives

    def open_initial(self) -> None:
        """Open the model asked for at start, if any (once the config is read)."""
        if self.initial_model:
            self.open_model(self.initial_model, self.initial_version)

    def open_model(self, name: str, version: str | None = None) -> None:
        """Show ``name``'s screen (replacing another model's screen), optionally on ``version``."""
        from console.tui.screens.model import ModelScreen

        app = self.app
        if app.config is None:  # the first instant: open it once the config is read
            self.initial_model, self.initial_version = name, version
            return
        current = app.screen
        if isinstance(current, ModelScreen):
            if current.model_name == name:
                if version:
                    current.select_version(version)
                return
            app.switch_screen(ModelScreen(name, version=version))
            return
        app.push_screen(ModelScreen(name, version=version))

    def models_listed(self) -> None:
        """The registry's list of models arrived (the catalog holds it). A model asked for at
        start whose screen opened before the list was known is checked now: a different
        spelling of one model (case, a unique prefix) opens that model; a name of none goes
        back to the overview, saying so."""
        from console.tui.screens.model import ModelScreen

        app = self.app
        asked, self._asked = self._asked, None
        known = app.catalog.models
        if asked is None or asked in known:
            return
        screen = app.screen
        if not isinstance(screen, ModelScreen) or screen.model_name != asked:
            return  # the user has moved on
        found = match_model(asked, known)
        if found is not None:
            app.switch_screen(ModelScreen(found, version=self.initial_version))
        else:
            app.pop_screen()
            app.notify(no_such_model(asked, known), severity="warning", timeout=10)

    def go_to(self, text: str) -> None:
        """Run the `:` command ``text``."""
        command = parse_goto(text)
        app = self.app
        if command is None:
            return
        if command.kind == "quit":
            app.exit(0)
        elif command.kind == "theme":
            app.switch_theme(command.arg)
        elif command.kind == "help":
            app.action_help()
        else:
            known = app.catalog.models
            found = match_model(command.arg, known) if known else command.arg
            if found is not None:
                self.open_model(found)
            else:
                app.notify(no_such_model(command.arg, known), severity="warning")


def match_model(name: str, known: Iterable[str]) -> str | None:
    """The model ``name`` means: itself, the one that differs only in case, or the only one
    it is a prefix of (case-insensitive); None when it means none or several."""
    names = list(known)
    if name in names:
        return name
    folded = {k.lower(): k for k in names}
    if name.lower() in folded:
        return folded[name.lower()]
    prefixed = [k for k in names if k.lower().startswith(name.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def no_such_model(name: str, known: Iterable[str]) -> str:
    """What to say when ``name`` matches no model: with the nearest names, if any (a whole
    name close to it, else one with a word close to it: "frod" → fraud-detector)."""
    import re
    from difflib import get_close_matches

    names = list(known)
    close = get_close_matches(name, names, n=3)
    if not close:
        words: dict[str, list[str]] = {}
        for k in names:
            for word in re.split(r"[-_.:/ ]+", k.lower()):
                words.setdefault(word, []).append(k)
        for word in get_close_matches(name.lower(), list(words), n=3):
            close.extend(k for k in words[word] if k not in close)
        close = close[:3]
    hint = f" — did you mean {', '.join(close)}?" if close else ""
    return f"No model named {name!r}{hint}"
