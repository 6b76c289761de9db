"""`a`: decide on the pending request of the selected version: approve it (four-eyes, bound to
the gate evidence shown) or reject it (`x`); the requester's reject withdraws it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Button, Input

from console.services.release.text import text_problem
from console.services.team import four_eyes_caveat
from console.tui.planview import heading, plan_preview
from console.tui.screens.dialog import ActionDialog, field


class ApproveDialog(ActionDialog):
    """Requester, reason, gates with numbers, approvals so far, and whether you may approve."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "reject", "Reject", show=False),
    ]

    def __init__(self, model: str, version: str, stage: str, request: Any = None) -> None:
        super().__init__(model)
        self.version = version
        self.stage = stage
        self.request = request  # the RequestView the handler found, for its reason and time

    def dialog_title(self) -> str:
        kind = "rollback" if self.plan is not None and self.plan.op == "rollback" else "promotion"
        return f"Approve {kind}: {self.model} {self.version} → {self.stage}"

    def form(self) -> Iterable[Widget]:
        yield field(
            "comment",
            Input(placeholder="optional: recorded with your decision", id="comment", compact=True),
            id="comment-row",
        )

    def buttons(self) -> Iterable[Button]:
        yield Button("Approve", id="confirm", variant="success", compact=True, classes="act")
        yield Button("Reject", id="reject", variant="error", compact=True, classes="act")

    async def fetch_plan(self) -> Any:
        return await self.release.plan_approval(self.model, self.version, self.stage)

    def render_plan(self, plan: Any) -> RenderableType:
        pal = self.palette
        request = self.request.request if self.request is not None else None
        you = Text()
        if plan.may_approve:
            you.append("✗ you may not approve", style=pal.err)
            you.append(f": {plan.may_approve}")
        else:
            you.append("✓ you may approve", style=pal.ok)
            you.append(f" as {plan.actor} ({plan.role.replace('_', ' ')})", style=pal.muted)
        preview = plan_preview(plan, pal, self.prod_stage, request=request, actor=False)
        caveat = four_eyes_caveat(self.release.config)
        note = [Text(caveat, style=pal.muted)] if caveat else []
        return Group(heading("you", pal), you, *note, Text(""), preview)

    def after_plan(self, plan: Any) -> None:
        self.relabel("reject", "Withdraw" if plan.requested_by == plan.actor else "Reject")

    def why_blocked(self, button: str) -> str:
        plan = self.plan
        if plan is None:
            return self.no_plan()
        if not plan.request_id:
            return f"no pending request moves {plan.stage} of {plan.model} to {plan.version}"
        if button == "confirm" and plan.may_approve:
            return f"you may not approve: {plan.may_approve}"
        return text_problem("comment", self.input_value("comment"))

    async def execute(self, button: str) -> Any:
        comment = self.input_value("comment").strip()
        if button == "reject":
            return await self.release.reject(self.model, self.version, self.stage, comment=comment)
        return await self.release.approve(
            self.model, self.version, self.stage,
            comment=comment, evidence_hash=self.plan.evidence_hash,
        )  # fmt: skip

    def action_reject(self) -> None:
        self.start("reject")
