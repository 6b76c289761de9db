"""The release actions (compare, approve, promote, rollback, audit): one table of their keys,
words and handlers, and the app's component that runs them.

A handler runs in a worker (:meth:`ReleaseActions.run`): it may read (keys typed meanwhile wait
for its dialog, see console.tui.typeahead) and then opens the dialog or screen that does the
rest; after a dialog that wrote something, the screens showing the model are refreshed.
Screens are imported when first used.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp
    from console.tui.screens.dialog import ActionDialog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionContext:
    """What the current screen knows when an action is invoked."""

    model: str | None = None
    version: str | None = None
    selected: tuple[str, ...] = ()
    production: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["ConsoleApp", ActionContext], Awaitable[None]]


@dataclass(frozen=True)
class ReleaseAction:
    """One release action: its key, label, help text, whether it changes anything, and the
    handler that runs it."""

    id: str
    key: str
    label: str
    description: str
    mutating: bool
    run: Handler


# -- the handlers ---------------------------------------------------------------------------


def _model_of(app: ConsoleApp, ctx: ActionContext, what: str) -> str | None:
    if not ctx.model:
        app.notify(f"{what}: open a model first (enter on the overview)", severity="warning")
        return None
    return ctx.model


async def compare(app: ConsoleApp, ctx: ActionContext) -> None:
    """The marked versions (else the selected one) against production."""
    from console.tui.screens.compare import CompareScreen

    model = _model_of(app, ctx, "Compare")
    versions = list(ctx.selected) or ([ctx.version] if ctx.version else [])
    if model is None:
        return
    if not versions:
        app.notify("Compare: select a version (space marks several)", severity="warning")
        return
    app.push_screen(CompareScreen(model, versions))


async def promote(app: ConsoleApp, ctx: ActionContext) -> None:
    """The selected version to the stage after the one it holds (ask when that is unclear)."""
    from console.tui.screens.pick import PickScreen
    from console.tui.screens.promote import PromoteDialog, next_stage

    model = _model_of(app, ctx, "Promote")
    if model is None or not ctx.version:
        if model is not None:
            app.notify("Promote: select a version first", severity="warning")
        return
    stages = list(app.loaded_config.stages)
    stage = next_stage(stages, ctx.extra.get("stages", ()))
    if stage is None:
        app.notify(
            f"{model} {ctx.version} is in {stages[-1]}, the last stage: nothing to promote to",
            severity="warning",
        )
        return
    if not stage:
        current = ctx.extra.get("stage_versions", {})
        options = [(s, f"{s}  (now {current.get(s) or 'empty'})") for s in stages]
        stage = await app.push_screen_wait(
            PickScreen(f"Promote {ctx.version} into which stage?", options, chosen=stages[0])
        )
        if not stage:
            return
    await _dialog(app, model, PromoteDialog(model, ctx.version, stage))


async def approve(app: ConsoleApp, ctx: ActionContext) -> None:
    """The pending request (promotion or rollback) of the selected version."""
    from console.services.release import ReleaseError
    from console.tui.screens.approve import ApproveDialog
    from console.tui.screens.pick import PickScreen

    model = _model_of(app, ctx, "Approve")
    if model is None or not await _ready(app):
        return
    try:
        waiting = await app.release.pending(model)
    except ReleaseError as exc:
        app.notify(f"Approve: {exc.message}", severity="error", timeout=8)
        return
    mine = [v for v in waiting if v.request.version == ctx.version]
    if not mine:
        others = "; ".join(
            f"{v.request.version} → {v.request.stage} (by {v.request.requested_by})"
            for v in waiting
        )
        hint = f" Waiting: {others} — select it and press a." if others else ""
        app.notify(
            f"{model} {ctx.version or ''} has no request waiting for approval.{hint}",
            title="Approve",
            severity="warning",
            timeout=8,
        )
        return
    view = mine[-1]
    if len(mine) > 1:
        options = [(v.id, f"{v.request.stage}  ({v.id} by {v.request.requested_by})") for v in mine]
        chosen = await app.push_screen_wait(PickScreen("Which request?", options))
        if not chosen:
            return
        view = next(v for v in mine if v.id == chosen)
    req = view.request
    await _dialog(app, model, ApproveDialog(model, req.version, req.stage, view))


async def rollback(app: ConsoleApp, ctx: ActionContext) -> None:
    """Production back to its previous version."""
    from console.tui.screens.rollback import RollbackDialog

    model = _model_of(app, ctx, "Rollback")
    if model is not None:
        await _dialog(app, model, RollbackDialog(model))


async def audit(app: ConsoleApp, ctx: ActionContext) -> None:
    """The audit log (filtered to the model when asked from a model's screen)."""
    from console.tui.screens.audit import AuditScreen

    if isinstance(app.screen, AuditScreen):
        app.screen.refresh_data()
        return
    app.push_screen(AuditScreen(model=ctx.model if ctx.extra.get("scope") == "model" else None))


async def _ready(app: ConsoleApp) -> bool:
    """Wait for the workspace (the first seconds after start)."""
    await app.ready.wait()
    return app.services is not None


async def _dialog(app: ConsoleApp, model: str, dialog: ActionDialog) -> None:
    changed = await app.push_screen_wait(dialog)
    if changed:
        app.actions.after_change(model)
    result = dialog.result
    app.watches.after(result)
    if result is not None:  # the dialog showed it in full; a line stays on the screen below
        app.notify(
            result.message,
            title=f"{result.action.capitalize()}: {result.status.replace('_', ' ')}",
            severity="information" if result.exit_code == 0 else "error",
            timeout=8,
        )


# -- the table ------------------------------------------------------------------------------

RELEASE_ACTIONS: dict[str, ReleaseAction] = {
    a.id: a
    for a in (
        ReleaseAction(
            "compare",
            "c",
            "Compare",
            "Compare the marked versions (space) with production on four axes",
            False,
            compare,
        ),
        ReleaseAction(
            "approve",
            "a",
            "Approve",
            "Approve (or reject) the selected version's pending request (four-eyes)",
            True,
            approve,
        ),
        ReleaseAction(
            "promote",
            "p",
            "Promote",
            "Promote the selected version to the next stage after its gates",
            True,
            promote,
        ),
        ReleaseAction(
            "rollback",
            "R",
            "Rollback",
            "Roll production back to the previous version (reason + typed confirmation)",
            True,
            rollback,
        ),
        ReleaseAction(
            "audit",
            "A",
            "Audit log",
            "Open the audit log: filter it, verify the chain",
            False,
            audit,
        ),
    )
}


def is_mutating(action_id: str) -> bool:
    action = RELEASE_ACTIONS.get(action_id)
    return bool(action and action.mutating)


# -- the app's component --------------------------------------------------------------------


class ReleaseActions:
    """The app's side of the release actions: one entry point for their keys, who may act,
    reconciliation on start, and refreshing the screens after a change."""

    def __init__(self, app: ConsoleApp) -> None:
        self.app = app
        self._off: str | None = None  # why this session may not change anything, once known

    def roles_changed(self) -> None:
        """The config (and with it the roles) was read: ask again who may act."""
        self._off = None

    def off(self) -> str:
        """Why this session may not change anything ('' when it may): --read-only, or the
        person's role from the config is viewer."""
        if self._off is None:
            app = self.app
            if app.config is None and not app.read_only:
                return ""  # roles are not known yet: the action re-checks once they are
            self._off = "read-only session (--read-only)" if app.read_only else self._viewer()
        return self._off

    def _viewer(self) -> str:
        from console.identity import actor_role, current_actor, principal

        try:
            actor = (self.app.identity or current_actor)()
            role = actor_role(actor, self.app.loaded_config.roles)
        except Exception:  # no passwd entry, odd identity: let the service decide
            log.exception("looking up the role failed")
            return ""
        return f"{principal(actor)} is a viewer" if role == "viewer" and actor else ""

    def refuse_if_off(self, action_id: str) -> bool:
        """Say why a changing action is not available here; True when it was refused."""
        why = self.off()
        if why and is_mutating(action_id):
            label = RELEASE_ACTIONS[action_id].label
            self.app.notify(f"{label} is not available: {why}", severity="warning")
            return True
        return False

    def after_change(self, model: str) -> None:
        """Something about ``model`` changed: refresh every screen that shows it."""
        from console.tui.screens.base import ConsoleScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, ConsoleScreen):
                screen.after_release_change(model)

    def run(self, action_id: str) -> None:
        """The one entry point of the release actions."""
        from console.tui.screens.base import ConsoleScreen

        app = self.app
        if self.refuse_if_off(action_id):
            return
        screen = app.screen
        context = screen.action_context() if isinstance(screen, ConsoleScreen) else None
        # The handler may read before it opens its dialog: keys typed meanwhile wait for it
        # (console.tui.typeahead) rather than act on the screen below.
        app.opening_from = screen

        async def perform() -> None:
            try:
                if app.config is None:  # pressed in the first instant: wait for the config
                    await app.ready.wait()
                    if self.refuse_if_off(action_id):
                        return
                await RELEASE_ACTIONS[action_id].run(app, context or ActionContext())
            finally:
                if app.opening_from is screen:
                    app.opening_from = None

        app.run_worker(perform, group="release-action")  # type: ignore[arg-type]

    def reconcile(self) -> None:
        """Resolve intents a crash left without an outcome; say what was found, if anything."""
        self.app.run_worker(self._reconcile(), group="reconcile", exclusive=True)

    async def _reconcile(self) -> None:
        app = self.app
        if app.workspace is None or app.workspace.audit is None:
            return
        from console.services.release.results import reconciled_lines

        try:
            done = await app.release.reconcile()
        except Exception as exc:  # a refusal or an unreadable log: a warning, never a crash
            log.warning("reconcile failed: %s", exc)
            message = getattr(exc, "message", str(exc))
            app.notify(f"Could not reconcile open intents: {message}", severity="warning")
            return
        if done:
            app.notify("\n".join(reconciled_lines(done)), title="Reconciled", timeout=15)
            for model in {r.model for r in done}:
                self.after_change(model)
