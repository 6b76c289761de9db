"""The model screen's side of the release actions: what an action is about (the context),
the requests waiting for approval under the stages, and refusing changing keys with a reason
in a session that may not change anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, work
from textual.widgets import Static

from console.tui.actions import RELEASE_ACTIONS, ActionContext
from console.tui.headers import requests_line
from console.tui.palette import palette_of
from console.tui.screens.base import ConsoleScreen
from console.tui.widgets.bars import tolerate_teardown

if TYPE_CHECKING:
    from console.services.overview import ModelView
    from console.services.release.request_fold import RequestView
    from console.tui.screens.model import VersionsTable
    from console.tui.screens.versionbook import VersionBook

CHANGING_KEYS = {a.key: a.id for a in RELEASE_ACTIONS.values() if a.mutating}


class ModelReleaseSide(ConsoleScreen):
    """Mixed into ModelScreen (which provides the versions, the table and the refresh)."""

    model_name: str
    selected: str | None
    waiting: list[RequestView]

    # Provided by ModelScreen.
    @property
    def versions(self) -> VersionBook:
        raise NotImplementedError

    @property
    def table(self) -> VersionsTable:
        raise NotImplementedError

    @property
    def view(self) -> ModelView | None:
        raise NotImplementedError

    @property
    def production(self) -> str | None:
        raise NotImplementedError

    @work(group="pending", exclusive=True)
    @tolerate_teardown
    async def load_pending(self) -> None:
        """Requests of this model waiting for approval, for the line under the stages."""
        app = self.console_app
        await app.ready.wait()
        try:
            waiting = await app.release.pending(self.model_name)
        except Exception:  # no audit backend or an unreadable log: the line stays away
            waiting = []
        if self.is_attached:
            self.waiting = list(waiting)
            self._update_requests()

    def after_release_change(self, model: str) -> None:
        """A release action changed ``model``: read stages, versions and requests again."""
        if model == self.model_name:
            self.refresh_data()

    def action_context(self) -> ActionContext:
        marked = tuple(str(k) for k in self.table.marked)
        view = self.view
        return ActionContext(
            model=self.model_name,
            version=self.selected,
            selected=marked or ((self.selected,) if self.selected else ()),
            production=self.production,
            extra={
                "scope": "model",
                "stages": self.versions.stages_of(self.selected) if self.selected else [],
                "stage_versions": {a.stage: a.version for a in view.stages} if view else {},
            },
        )

    def on_key(self, event: events.Key) -> None:
        """A changing action's key in a session that may not change anything: say why (the
        footer does not offer it)."""
        action = CHANGING_KEYS.get(event.key)
        actions = self.console_app.actions
        if action is not None and actions.off():
            event.stop()
            event.prevent_default()
            actions.refuse_if_off(action)

    def _update_requests(self) -> None:
        app = self.console_app
        bar = self.query_one("#requests", Static)
        bar.update(requests_line(palette_of(app), self.waiting))
        bar.set_class(bool(self.waiting), "-shown")
