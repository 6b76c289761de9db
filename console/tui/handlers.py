"""The release actions' handlers, registered in ``console.tui.actions.HANDLERS``.

Each runs in a worker (``ConsoleApp.release_action``): it may read (which requests wait) and
then opens the dialog or screen that does the rest; after a dialog that wrote something, the
screens showing the model are refreshed. Screens are imported when first used.
"""

from __future__ import annotations

from typing import Any

from console.tui.actions import HANDLERS, ActionContext


async def _ready(app: Any) -> bool:
    """Wait for the workspace (the first seconds after start)."""
    await app.ready.wait()
    return app.services is not None


def _model_of(app: Any, ctx: ActionContext, what: str) -> str | None:
    if not ctx.model:
        app.notify(f"{what}: open a model first (enter on the overview)", severity="warning")
        return None
    return ctx.model


async def compare(app: Any, ctx: ActionContext) -> None:
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


async def promote(app: Any, ctx: ActionContext) -> None:
    """The selected version to the stage after the one it holds (ask when that is unclear)."""
    from console.tui.screens.pick import PickScreen
    from console.tui.screens.promote import PromoteDialog, next_stage

    model = _model_of(app, ctx, "Promote")
    if model is None or not ctx.version:
        if model is not None:
            app.notify("Promote: select a version first", severity="warning")
        return
    stages = list(app.config.stages)
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


async def approve(app: Any, ctx: ActionContext) -> None:
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


async def rollback(app: Any, ctx: ActionContext) -> None:
    """Production back to its previous version."""
    from console.tui.screens.rollback import RollbackDialog

    model = _model_of(app, ctx, "Rollback")
    if model is not None:
        await _dialog(app, model, RollbackDialog(model))


async def audit(app: Any, ctx: ActionContext) -> None:
    """The audit log (filtered to the model when asked from a model's screen)."""
    from console.tui.screens.audit import AuditScreen

    if isinstance(app.screen, AuditScreen):
        app.screen.refresh_data()
        return
    app.push_screen(AuditScreen(model=ctx.model if ctx.extra.get("scope") == "model" else None))


async def _dialog(app: Any, model: str, dialog: Any) -> None:
    changed = await app.push_screen_wait(dialog)
    if changed:
        app.after_change(model)
    result = dialog.result
    watches = getattr(app, "watches", None)
    if watches is not None:
        watches.after(result)
    if result is not None:  # the dialog showed it in full; a line stays on the screen below
        app.notify(
            result.message,
            title=f"{result.action.capitalize()}: {result.status.replace('_', ' ')}",
            severity="information" if result.exit_code == 0 else "error",
            timeout=8,
        )


HANDLERS.update(
    {
        "compare": compare,
        "approve": approve,
        "promote": promote,
        "rollback": rollback,
        "audit": audit,
    }
)
