"""Command palette (Ctrl+P) providers: models, versions, actions and themes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from console.tui.actions import RELEASE_ACTIONS, is_mutating

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp

Command = tuple[str, Callable[[], Any], str]


class _Commands(Provider):
    """A provider over a list of (title, callback, help) built fresh for each palette."""

    @property
    def console_app(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def commands(self) -> Iterator[Command]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for title, callback, help_text in self.commands():
            yield DiscoveryHit(Text(title), callback, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, _highlight(matcher, title), callback, help=escape(help_text))


def _highlight(matcher: Any, title: str) -> Any:
    """``title`` with the matched letters highlighted; model names and versions come from
    backends, so a title that could read as markup is shown plain instead."""
    return matcher.highlight(title) if "[" not in title else Text(title)


class ModelCommands(_Commands):
    """Open a model's screen."""

    def commands(self) -> Iterator[Command]:
        app = self.console_app
        for name, description in sorted(app.catalog.models.items()):
            yield f"Open {name}", partial(app.open_model, name), description


class VersionCommands(_Commands):
    """Jump to a version: of the model on screen, or the staged versions of every model."""

    def commands(self) -> Iterator[Command]:
        app = self.console_app
        screen = self.screen
        current = getattr(screen, "model_name", None)
        if current is not None:
            for version in getattr(screen, "version_names", list)()[:2000]:
                yield (
                    f"{current} {version}",
                    partial(app.open_model, current, version),
                    "select this version",
                )
        for model, known in sorted(app.catalog.versions.items()):
            if model == current:
                continue
            for version, stage in known:
                yield f"{model} {version}", partial(app.open_model, model, version), stage


def _action_list(app: ConsoleApp) -> Iterator[Command]:
    yield "Refresh", app.action_refresh, "re-read every panel on this screen (r)"
    yield "Help: keys", app.action_help, "every key of this screen (?)"
    yield "Go to model…", app.action_goto, "type a model name (:)"
    for action in RELEASE_ACTIONS.values():
        if is_mutating(action.id) and app.actions.off():
            continue
        yield (
            action.label,
            partial(app.release_action, action.id),
            f"{action.description} ({action.key})",
        )
    yield from _theme_list(app)


def _theme_list(app: ConsoleApp) -> Iterator[Command]:
    for name, spec in sorted(app.theme_specs.items()):
        mark = " (current)" if name == app.theme else ""
        yield f"Theme: {name}", partial(app.switch_theme, name), (spec.description or "") + mark


class ActionCommands(_Commands):
    """Refresh, help, go to, the release actions and the themes."""

    def commands(self) -> Iterator[Command]:
        yield from _action_list(self.console_app)


class ThemeCommands(_Commands):
    """Only the themes (Ctrl+T)."""

    def commands(self) -> Iterator[Command]:
        yield from _theme_list(self.console_app)
