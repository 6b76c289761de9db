"""The app's side of the release actions: one entry point for their keys, who may act, the
release service, reconciliation on start, and refreshing the screens after a change."""

from __future__ import annotations

import logging
from typing import Any

from textual import work
from textual.app import App

from console.tui import actions, handlers  # noqa: F401  (handlers fill actions.HANDLERS)

log = logging.getLogger(__name__)


class ReleaseActions(App[int]):
    """Mixed into ConsoleApp: ``c a p R A`` go through :meth:`release_action`."""

    services: Any
    workspace: Any
    config: Any
    read_only: bool
    ready: Any  # asyncio.Event, set once the services are built
    identity: Any
    opening_from: Any = None  # the screen an action is opening a dialog over, until it has
    _actions_off: str | None

    @work(group="reconcile", exclusive=True)
    async def reconcile(self) -> None:
        """Resolve intents a crash left without an outcome; say what was found, if anything."""
        if self.workspace is None or self.workspace.get("audit") is None:
            return
        from console.cli.views import reconciled_lines

        try:
            done = await self.release.reconcile()
        except Exception as exc:  # a refusal or an unreadable log: a warning, never a crash
            log.warning("reconcile failed: %s", exc)
            message = getattr(exc, "message", str(exc))
            self.notify(f"Could not reconcile open intents: {message}", severity="warning")
            return
        if done:
            self.notify("\n".join(reconciled_lines(done)), title="Reconciled", timeout=15)
            for model in {r.model for r in done}:
                self.after_change(model)

    @property
    def release(self) -> Any:
        """The ReleaseService (console.services.release) once the workspace is open."""
        assert self.services is not None, "the workspace is not open yet"
        return self.services.release

    def action_compare(self) -> None:
        self.release_action("compare")

    def action_approve(self) -> None:
        self.release_action("approve")

    def action_promote(self) -> None:
        self.release_action("promote")

    def action_rollback(self) -> None:
        self.release_action("rollback")

    def action_audit(self) -> None:
        self.release_action("audit")

    def actions_off(self) -> str:
        """Why this session may not change anything ('' when it may): --read-only, or the
        person's role from the config is viewer."""
        if self._actions_off is None:
            if self.config is None and not self.read_only:
                return ""  # roles are not known yet: the action re-checks once they are
            if self.read_only:
                self._actions_off = "read-only session (--read-only)"
            else:
                from console.identity import actor_role, current_actor, principal

                try:
                    actor = (self.identity or current_actor)()
                    role = actor_role(actor, self.config.roles)
                except Exception:  # no passwd entry, odd identity: let the service decide
                    log.exception("looking up the role failed")
                    role, actor = "release_manager", None
                self._actions_off = (
                    f"{principal(actor)} is a viewer" if role == "viewer" and actor else ""
                )
        return self._actions_off

    def refuse_if_off(self, action_id: str) -> bool:
        """Say why a changing action is not available here; True when it was refused."""
        why = self.actions_off()
        if why and actions.is_mutating(action_id):
            label = actions.RELEASE_ACTIONS[action_id].label
            self.notify(f"{label} is not available: {why}", severity="warning")
            return True
        return False

    def after_change(self, model: str) -> None:
        """Something about ``model`` changed: refresh every screen that shows it."""
        for screen in self.screen_stack:
            refresh = getattr(screen, "after_release_change", None)
            if refresh is not None:
                refresh(model)

    def release_action(self, action_id: str) -> None:
        """The one entry point of the release actions (see console.tui.actions)."""
        if self.refuse_if_off(action_id):
            return
        context_of = getattr(self.screen, "action_context", None)
        context = context_of() if context_of is not None else actions.ActionContext()

        # The handler may read before it opens its dialog: keys typed meanwhile wait for it
        # (ConsoleApp.on_event) rather than act on the screen below.
        origin = self.opening_from = self.screen

        async def perform() -> None:
            try:
                if self.config is None:  # pressed in the first instant: wait for the config
                    await self.ready.wait()
                    if self.refuse_if_off(action_id):
                        return
                await actions.perform(self, action_id, context)
            finally:
                if self.opening_from is origin:
                    self.opening_from = None

        self.run_worker(perform, group="release-action")  # type: ignore[arg-type]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Changing actions are hidden from the footer when this session may not change anything.
        return not (actions.is_mutating(action) and self.actions_off())
