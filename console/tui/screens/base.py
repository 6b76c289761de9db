"""The base of the console's full screens (overview, model, compare, audit log): the hooks the
app calls on the screen on top, or on every screen of the stack, each with a default that
does nothing. Modal screens (dialogs, help, pickers) do not take part."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from console.tui.actions import ActionContext

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp


class ConsoleScreen(Screen[None]):
    """A full screen of the console."""

    @property
    def console_app(self) -> ConsoleApp:
        """The app, typed (``self.app`` is any Textual app)."""
        return cast("ConsoleApp", self.app)

    def refresh_data(self) -> None:
        """`r`: read what the screen shows again."""

    def config_loaded(self) -> None:
        """The app has validated its config (after the first frame)."""

    def after_release_change(self, model: str) -> None:
        """A release action changed ``model``: refresh what shows it."""

    def action_context(self) -> ActionContext:
        """What a release action invoked here is about."""
        return ActionContext()
