"""The release actions (compare, approve, promote, rollback, audit): keys, words and handlers.

One place maps each action to what runs it: ``HANDLERS`` (filled by console.tui.handlers, which
opens the dialogs and screens that call ``console.services.release``). An action without a
handler says so instead of acting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

FEATURE = "release-actions"


@dataclass(frozen=True)
class ReleaseAction:
    """One release action: its key, label, help text and whether it changes anything."""

    id: str
    key: str
    label: str
    description: str
    mutating: bool
    service: str  # the service call the handler will make once the feature lands


@dataclass(frozen=True)
class ActionContext:
    """What the current screen knows when an action is invoked."""

    model: str | None = None
    version: str | None = None
    selected: tuple[str, ...] = ()
    production: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


RELEASE_ACTIONS: dict[str, ReleaseAction] = {
    a.id: a
    for a in (
        ReleaseAction(
            "compare",
            "c",
            "Compare",
            "Compare the marked versions (space) with production on four axes",
            False,
            "console.services.release.compare",
        ),
        ReleaseAction(
            "approve",
            "a",
            "Approve",
            "Approve (or reject) the selected version's pending request (four-eyes)",
            True,
            "console.services.release.approve",
        ),
        ReleaseAction(
            "promote",
            "p",
            "Promote",
            "Promote the selected version to the next stage after its gates",
            True,
            "console.services.release.promote",
        ),
        ReleaseAction(
            "rollback",
            "R",
            "Rollback",
            "Roll production back to the previous version (reason + typed confirmation)",
            True,
            "console.services.release.rollback",
        ),
        ReleaseAction(
            "audit",
            "A",
            "Audit log",
            "Open the audit log: filter it, verify the chain",
            False,
            "console.services.release.audit_view",
        ),
    )
}

Handler = Callable[[Any, ActionContext], Awaitable[None] | None]
HANDLERS: dict[str, Handler] = {}
"""Action id -> handler(app, context); see console.tui.handlers."""


def is_mutating(action_id: str) -> bool:
    action = RELEASE_ACTIONS.get(action_id)
    return bool(action and action.mutating)


def pending_message(action_id: str) -> str:
    """What the user reads when no handler is registered for the action."""
    action = RELEASE_ACTIONS[action_id]
    return f"{action.label} arrives with the {FEATURE} feature"


async def perform(app: Any, action_id: str, context: ActionContext) -> None:
    """Run the action's handler, or say that there is none."""
    handler = HANDLERS.get(action_id)
    if handler is None:
        app.notify(pending_message(action_id), title=RELEASE_ACTIONS[action_id].label)
        return
    result = handler(app, context)
    if result is not None:
        await result
