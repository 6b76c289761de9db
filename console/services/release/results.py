"""What the release service hands back: plans to preview, results to show, refusals to explain."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from console.domain import GateResult
from console.domain.models import Frozen

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


class Refused(Exception):
    """The action is not allowed (read-only, role, four-eyes, policy, conflict): nothing changed.

    ``kind`` is one of read_only, role, four_eyes, policy, conflict, usage, not_found.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "policy",
        gates: tuple[GateResult, ...] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.gates = gates
        self.details = details or {}

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE if self.kind in ("usage", "not_found") else EXIT_REFUSED


class ReleaseError(Exception):
    """A backend needed for the action failed; the message says what is (not) changed."""

    def __init__(self, message: str, *, next_command: str = "", why: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.next_command = next_command
        self.why = why  # the cause alone, for a caller that words the rest itself


class ApprovalStatus(Frozen):
    """One approval as the plan shows it: does it count, and if not, why."""

    actor: str
    role: str
    counts: bool
    why: str = ""
    at: str = ""
    comment: str = ""


class Plan(Frozen):
    """A promotion or rollback as it would run now: what moves, gates, approvals, what is
    written. Preview it, show it in a dialog, then call the action with ``evidence_hash``."""

    op: str  # promote | rollback
    model: str
    version: str
    stage: str
    from_version: str | None
    commit: str = ""
    actor: str
    role: str
    deploy: str
    gates: tuple[GateResult, ...] = ()
    evidence_hash: str = ""
    request_id: str | None = None
    requested_by: str | None = None
    required_approvals: int = 0
    approvals: tuple[ApprovalStatus, ...] = ()
    authors: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()
    may_request: str = ""  # "" when the actor may request; else why not
    may_approve: str = ""  # "" when the actor may approve; else why not
    ready: bool = False  # confirming executes the move now
    already: bool = False  # the stage already points at the version
    confirm_model_name: bool = False  # rollback: the model name must be typed
    rolled_back: dict[str, Any] | None = None  # the version's newest rollback (incidents)
    notices: tuple[str, ...] = ()  # e.g. open intents of the model, named

    @property
    def quorum(self) -> tuple[int, int]:
        """(approvals that count, approvals required)."""
        return sum(1 for a in self.approvals if a.counts), self.required_approvals


class ActionResult(Frozen):
    """The outcome of one action, for the CLI (text or --json) and the TUI."""

    action: str
    status: str  # requested | pending | approved | rejected | executed | already | deploy_failed | unknown | failed
    message: str
    model: str
    version: str = ""
    stage: str = ""
    request: dict[str, Any] | None = None
    plan: Plan | None = None
    gates: tuple[GateResult, ...] = ()
    events: tuple[int, ...] = ()  # seq of every audit event written
    next_command: str = ""
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.status in ("deploy_failed", "unknown", "failed") else EXIT_OK


class Reconciled(Frozen):
    """An intent found without an outcome, and what the registry says happened."""

    intent_seq: int
    op: str
    model: str
    stage: str
    version: str
    result: str  # executed | failed | unknown
    message: str
    outcome_seq: int | None = None


def reconciled_lines(items: list[Reconciled]) -> list[str]:
    """What reconciling found, a line each (the CLI prints them, the TUI notifies them)."""
    return [
        f"reconciled intent seq {r.intent_seq} ({r.op} {r.model} {r.version} to {r.stage}): "
        f"{r.result} — {r.message}"
        for r in items
    ]
