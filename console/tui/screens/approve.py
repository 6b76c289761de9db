"""`a`: decide on the pending request of the selected version: approve it (four-eyes, bound to
the gate evidence shown) or reject it (`x`); the requester's reject withdraws it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from console.services.release.text import text_problem
from console.services.team import four_eyes_caveat
from console.tui.planview import heading, plan_preview, who_may_approve
from console.tui.screens.dialog import ActionDialog, button, field
from console.tui.widgets.bars import tolerate_teardown

if TYPE_CHECKING:
    from console.services.release import ActionResult, Plan, ReleaseService
    from console.services.release.request_fold import RequestView
    from console.tui.palette import Palette


class ApproveDialog(ActionDialog):
    """Requester, reason, gates with numbers, approvals so far, and whether you may approve."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "reject", "Reject", show=False),
    ]

    def __init__(
        self, model: str, version: str, stage: str, request: RequestView | None = None
    ) -> None:
        super().__init__(model)
        self.version = version
        self.stage = stage
        self.request = request  # the RequestView the handler found, for its reason and time
        self.colleague: tuple[str, ReleaseService] | None = (
            None  # (handle, service) in a demo workspace
        )
        self.colleague_note = ""  # why no demo colleague may approve, when none may

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
        yield button("Approve", id="confirm", variant="success")
        yield button("Reject", id="reject", variant="error")
        # Demo workspaces only: a story colleague approves a request you made (four-eyes).
        yield button("Approve as demo colleague", id="colleague", variant="warning")

    async def fetch_plan(self) -> Plan:
        return await self.release.plan_approval(self.model, self.version, self.stage)

    def render_plan(self, plan: Plan) -> RenderableType:
        pal = self.palette
        request = self.request.request if self.request is not None else None
        you = Text()
        if plan.may_approve:
            you.append("✗ you may not approve", style=pal.err)
            you.append(f": {plan.may_approve}")
            config = self.console_app.loaded_config
            you.append(f"\nwho may approve: {who_may_approve(plan, config)}", style=pal.muted)
            you.append_text(self._demo_note(pal))
        else:
            you.append("✓ you may approve", style=pal.ok)
            you.append(f" as {plan.actor} ({plan.role.replace('_', ' ')})", style=pal.muted)
        preview = plan_preview(plan, pal, self.prod_stage, request=request, actor=False)
        caveat = four_eyes_caveat(self.release.config)
        note = [Text(caveat, style=pal.muted)] if caveat else []
        return Group(heading("you", pal), you, *note, Text(""), preview)

    def enter_words(self, button: str) -> str:
        move = f"{self.version} → {self.stage}"
        if button == "confirm":
            return f"approve {move}"
        if button == "reject":
            withdraw = self.plan is not None and self.plan.requested_by == self.plan.actor
            return f"{'withdraw' if withdraw else 'reject'} the request for {move}"
        if button == "colleague" and self.colleague is not None:
            return f"demo colleague {self.colleague[0]} approves {move}"
        return super().enter_words(button)

    def _demo_note(self, pal: Palette) -> Text:
        if self.colleague is not None:
            from console.demo.persona import describe

            handle = self.colleague[0]
            return Text.assemble(
                ("\ndemo: ", pal.accent),
                f"{describe(handle)} may approve it. ",
                (
                    f"“Approve as {handle} (demo)” does, recorded in the audit log as a demo persona "
                    "played by you.",
                    pal.muted,
                ),
            )
        if self.colleague_note:
            return Text(f"\ndemo: {self.colleague_note}", style=pal.muted)
        return Text()

    def after_plan(self, plan: Plan) -> None:
        self.relabel("reject", "Withdraw" if plan.requested_by == plan.actor else "Reject")
        app = self.console_app
        wanted = plan.request_id and plan.may_approve and app.demo_workspace
        if wanted and self.colleague is None and not self.colleague_note:
            self.find_colleague()

    @work(group="colleague", exclusive=True)
    @tolerate_teardown
    async def find_colleague(self) -> None:
        """In a demo workspace: the story's release manager who may approve this request."""
        from console.demo.build import DemoError
        from console.demo.persona import colleague_for

        try:
            self.colleague = await colleague_for(self.release, self.model, self.version, self.stage)
        except DemoError as exc:
            self.colleague_note = str(exc)
        except Exception as exc:  # a backend failing: the dialog works without a colleague
            self.colleague_note = f"no demo colleague: {getattr(exc, 'message', exc)}"
        if self.colleague is not None:
            self.relabel("colleague", f"Approve as {self.colleague[0]} (demo)")
        if self.plan is not None:
            self.query_one("#plan", Static).update(self.render_plan(self.plan))
        self.update_state()

    def hint(self) -> Text:
        plan, colleague = self.plan, self.colleague
        if colleague is None or plan is None or not plan.may_approve or self.done:
            return super().hint()
        if isinstance(self.focused, Button):
            return super().hint()
        return Text(
            f"you may not approve (four-eyes); demo: tab to “Approve as {colleague[0]} (demo)”",
            style=self.palette.warn,
        )

    def update_state(self) -> None:
        super().update_state()
        shown = self.colleague is not None and not self.done
        self.query_one("#colleague", Button).display = shown

    def why_blocked(self, button: str) -> str:
        plan = self.plan
        if plan is None:
            return self.no_plan()
        if not plan.request_id:
            return f"no pending request moves {plan.stage} of {plan.model} to {plan.version}"
        if button == "colleague":
            return "" if self.colleague is not None else "no demo colleague here"
        if button == "confirm" and plan.may_approve:
            return f"you may not approve: {plan.may_approve}"
        return text_problem("comment", self.input_value("comment"))

    async def execute(self, button: str) -> ActionResult:
        comment = self.input_value("comment").strip()
        if button == "colleague" and self.colleague is not None:
            return await self.colleague[1].approve(
                self.model,
                self.version,
                self.stage,
                comment=comment or "approved by a demo colleague",
                evidence_hash=self.confirmed_plan.evidence_hash,
            )
        if button == "reject":
            return await self.release.reject(self.model, self.version, self.stage, comment=comment)
        return await self.release.approve(
            self.model,
            self.version,
            self.stage,
            comment=comment,
            evidence_hash=self.confirmed_plan.evidence_hash,
        )

    def action_reject(self) -> None:
        self.start("reject")
