"""`p`: promote the selected version to the next stage, after its plan and gates are shown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.console import RenderableType
from textual import on
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input

from console.services.release.text import text_problem
from console.tui import format as fmt
from console.tui.planview import plan_preview, quality_failures, rolled_back_gate, schema_gate
from console.tui.screens.dialog import ActionDialog, button, field
from console.tui.widgets.marked import TickBox

if TYPE_CHECKING:
    from console.services.release import ActionResult, Plan


def next_stage(stages: Sequence[str], current: Sequence[str]) -> str | None:
    """The stage after the furthest one ``current`` holds; "" when the version holds none and
    more than one stage could be meant (ask); None when it is already in the last stage."""
    held = [stages.index(s) for s in current if s in stages]
    if held:
        i = max(held)
        return stages[i + 1] if i + 1 < len(stages) else None
    return stages[0] if len(stages) == 1 else ""


class PromoteDialog(ActionDialog):
    """The promotion plan (move, deploy, gates, approvals, audit steps), a reason, confirm."""

    def __init__(self, model: str, version: str, stage: str) -> None:
        super().__init__(model)
        self.version = version
        self.stage = stage
        self.ack = False
        self.ack_rolled_back = False

    def dialog_title(self) -> str:
        return f"Promote {self.model} {self.version} → {self.stage}"

    def form(self) -> Iterable[Widget]:
        yield field(
            "reason (required)",
            Input(placeholder="why: recorded in the audit log", id="reason", compact=True),
            id="reason-row",
        )
        yield TickBox("I acknowledge the schema change", id="ack", compact=True, classes="-hidden")
        yield TickBox(
            "I acknowledge it was rolled back",
            id="ack-rolled-back",
            compact=True,
            classes="-hidden",
        )

    def buttons(self) -> Iterable[Button]:
        yield button("Promote", id="confirm", variant="primary")

    async def fetch_plan(self) -> Plan:
        return await self.release.plan_promotion(
            self.model,
            self.version,
            self.stage,
            ack_schema_change=self.ack,
            ack_rolled_back=self.ack_rolled_back,
        )

    def render_plan(self, plan: Plan) -> RenderableType:
        return plan_preview(plan, self.palette, self.prod_stage)

    def after_plan(self, plan: Plan) -> None:
        gate = schema_gate(plan)
        box = self.query_one("#ack", Checkbox)
        if gate is not None or self.ack:
            if gate is not None and isinstance(gate.observed, int | float):
                changed = fmt.plural(int(gate.observed), "field")
                box.label = f"I acknowledge the schema change ({changed} changed)"
            box.remove_class("-hidden")
        back = self.query_one("#ack-rolled-back", Checkbox)
        if rolled_back_gate(plan) is not None or self.ack_rolled_back:
            rec = plan.rolled_back or {}
            when = (rec.get("at") or "")[:16].replace("T", " ")
            back.label = (
                f"I acknowledge {plan.version} was rolled back from {rec.get('stage', '?')}"
                + (f" ({when} UTC)" if when else "")
            )
            back.remove_class("-hidden")
        self.relabel("confirm", "Promote now" if plan.ready else "Request promotion")

    def enter_words(self, button: str) -> str:
        if button != "confirm":
            return super().enter_words(button)
        move = f"{self.version} → {self.stage}"
        if self.plan is not None and not self.plan.ready:
            return f"request promoting {move}"
        return f"promote {move}"

    def why_blocked(self, button: str) -> str:
        plan = self.plan
        if plan is None:
            return self.no_plan()
        if plan.may_request:
            return f"you may not promote: {plan.may_request}"
        if plan.already:
            return f"{plan.stage} already points at {plan.version}: nothing to move"
        fails = quality_failures(plan)
        if fails:
            acks = {
                "schema": "the schema changed",
                "rolled_back": f"{plan.version} was rolled back",
            }
            if {g.gate for g in fails} <= set(acks):
                said = " and ".join(acks[g.gate] for g in fails)
                return f"{said}: tick the acknowledgement (tab to it, space) to go on"
            if len(fails) > 2:  # each gate's numbers are in the plan above; name them here
                names = ", ".join(g.gate for g in fails)
                return f"blocked by {len(fails)} gates: {names} (the plan above says why)"
            return "blocked by gates: " + "; ".join(g.detail for g in fails)
        reason = self.input_value("reason")
        if not reason.strip():
            return "a reason is required: it is recorded in the audit log"
        return text_problem("reason", reason)

    async def execute(self, button: str) -> ActionResult:
        return await self.release.promote(
            self.model,
            self.version,
            self.stage,
            reason=self.input_value("reason").strip(),
            ack_schema_change=self.ack,
            evidence_hash=self.confirmed_plan.evidence_hash,
            ack_rolled_back=self.ack_rolled_back,
        )

    @on(Checkbox.Changed, "#ack")
    def _ack_changed(self, event: Checkbox.Changed) -> None:
        self.ack = event.value
        self.plan = None  # nothing runs on the old evidence: the schema gate changes with it
        self.update_state()
        self.load_plan()

    @on(Checkbox.Changed, "#ack-rolled-back")
    def _ack_rolled_back_changed(self, event: Checkbox.Changed) -> None:
        self.ack_rolled_back = event.value
        self.plan = None  # the rolled-back gate changes with it: nothing runs on the old plan
        self.update_state()
        self.load_plan()
