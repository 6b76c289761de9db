"""`R`: roll a stage (production) back to its previous version: the plan, a reason and the
model name typed exactly (when the policy asks for it) before the confirm button wakes up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import RenderableType
from textual.widget import Widget
from textual.widgets import Button, Input

from console.services.release.text import text_problem
from console.tui.planview import plan_preview
from console.tui.screens.dialog import ActionDialog, button, field

GATES_NOTE = "shown, never blocking: rollbacks happen during incidents"

if TYPE_CHECKING:
    from console.services.release import ActionResult, Plan


class RollbackDialog(ActionDialog):
    """Which version comes back, the deploy, gates (not blocking), reason, typed confirmation."""

    def __init__(self, model: str, *, stage: str | None = None) -> None:
        super().__init__(model)
        self.stage = stage

    def dialog_title(self) -> str:
        plan = self.plan
        if plan is None:
            return f"Roll back {self.model}"
        return f"Roll back {self.model}: {plan.stage} {plan.from_version} → {plan.version}"

    def form(self) -> Iterable[Widget]:
        yield field(
            "reason (required)",
            Input(placeholder="why: the incident, the symptom", id="reason", compact=True),
            id="reason-row",
        )
        yield field(
            "model name (to confirm)",
            Input(placeholder=f"type {self.model}", id="confirm-name", compact=True),
            id="confirm-row",
            hidden=True,
        )

    def buttons(self) -> Iterable[Button]:
        yield button("Roll back", id="confirm", variant="error")

    async def fetch_plan(self) -> Plan:
        return await self.release.plan_rollback(self.model, stage=self.stage)

    def render_plan(self, plan: Plan) -> RenderableType:
        return plan_preview(plan, self.palette, self.prod_stage, gates_note=GATES_NOTE)

    def after_plan(self, plan: Plan) -> None:
        row = self.query_one("#confirm-row")
        row.set_class(not plan.confirm_model_name, "-hidden")
        now = plan.ready or not plan.required_approvals
        self.relabel("confirm", "Roll back now" if now else "Request rollback")

    def enter_words(self, button: str) -> str:
        plan = self.plan
        if button != "confirm" or plan is None:
            return super().enter_words(button)
        move = f"roll {plan.stage} back {plan.from_version} → {plan.version}"
        now = plan.ready or not plan.required_approvals
        return move if now else f"request to {move}"

    def why_blocked(self, button: str) -> str:
        plan = self.plan
        if plan is None:
            return self.no_plan()
        if plan.may_request:
            return f"you may not roll back: {plan.may_request}"
        if plan.already:
            return f"{plan.stage} already points at {plan.version}: nothing to roll back"
        reason = self.input_value("reason")
        if not reason.strip():
            return "a reason is required: it is recorded in the audit log"
        problem = text_problem("reason", reason)
        if problem:
            return problem
        if plan.confirm_model_name and self.input_value("confirm-name") != self.model:
            return f"type the model name {self.model} exactly to confirm"
        return ""

    async def execute(self, button: str) -> ActionResult:
        plan = self.confirmed_plan
        typed = self.input_value("confirm-name") if plan.confirm_model_name else self.model
        return await self.release.rollback(
            self.model,
            reason=self.input_value("reason").strip(),
            confirmation=typed,
            stage=plan.stage,
            to_version=plan.version,
        )
