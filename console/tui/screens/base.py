"""The base of the console's screens: the app reached typed (``console_app``), and for the full
screens (overview, model, compare, audit log) the hooks the app calls on the screen on top, or
on every screen of the stack, each with a default that does nothing. Modal screens (dialogs,
help, pickers) take no hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

from console.tui.actions import ActionContext

if TYPE_CHECKING:
    from console.config import ConsoleConfig
    from console.services.workspace import Workspace
    from console.tui.app import ConsoleApp
    from console.tui.wiring import Services

ResultType = TypeVar("ResultType")


def console_app(node: DOMNode) -> ConsoleApp:
    """The app ``node`` runs in, typed (``node.app`` is any Textual app)."""
    return cast("ConsoleApp", node.app)


class ConsoleScreen(Screen[None]):
    """A full screen of the console."""

    @property
    def console_app(self) -> ConsoleApp:
        """The app, typed (``self.app`` is any Textual app)."""
        return console_app(self)

    @property
    def config(self) -> ConsoleConfig:
        """The validated config (screens that read it open once it is loaded)."""
        return self.console_app.loaded_config

    @property
    def services(self) -> Services:
        """The use cases, once the workspace is open (after ``app.ready``)."""
        services = self.console_app.services
        assert services is not None, "the workspace is not open yet"
        return services

    @property
    def workspace(self) -> Workspace:
        """The open workspace (after ``app.ready``)."""
        workspace = self.console_app.workspace
        assert workspace is not None, "the workspace is not open yet"
        return workspace

    def refresh_data(self) -> None:
        """`r`: read what the screen shows again."""

    def config_loaded(self) -> None:
        """The app has validated its config (after the first frame)."""

    def after_release_change(self, model: str) -> None:
        """A release action changed ``model``: refresh what shows it."""

    def action_context(self) -> ActionContext:
        """What a release action invoked here is about."""
        return ActionContext()


class ConsoleModal(ModalScreen[ResultType]):
    """A dialog, picker or help over a screen; dismissed with a ``ResultType``."""

    @property
    def console_app(self) -> ConsoleApp:
        """The app, typed (``self.app`` is any Textual app)."""
        return console_app(self)
