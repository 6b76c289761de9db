"""Pilot tests of the release actions: approve, promote, rollback dialogs, compare, audit log,
approvals in the overview, read-only and viewers, and reconciliation on start.

The real ReleaseService runs over the fakes (tests/tui/fakes.py: production needs one approval,
an auc bound, rollback needs the model name typed), acting as the user each test names.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.console import Console
from textual.widgets import Button, Static
from tui_fakes import NOW

from console.domain import AuditEvent
from console.tui.rows import UNKNOWN_APPROVALS
from console.tui.screens.approve import ApproveDialog
from console.tui.screens.audit import AuditScreen
from console.tui.screens.compare import CompareScreen
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.screens.promote import PromoteDialog
from console.tui.screens.rollback import RollbackDialog

CHURN = "churn-predictor"


def text_of(widget: Any, width: int = 160) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=width, record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def until(pilot: Any, cond: Any, what: str) -> None:
    for _ in range(100):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def actions(world: Any) -> list[tuple[str, str]]:
    return [(e.action, e.result) for e in world.audit_log]


async def open_dialog(pilot: Any, key: str, kind: type, wait: Any) -> Any:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), kind.__name__)
    dialog = pilot.app.screen
    await until(pilot, lambda: dialog.plan is not None or dialog.plan_error, "the plan")
    await wait(pilot)
    return dialog


# -- approve ------------------------------------------------------------------------------------


async def test_approve_dialog_shows_gates_and_refuses_self_approval(
    make_app, wait, request_promotion
):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app(user="sam", model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        line = text_of(screen.query_one("#requests"))
        assert "awaiting approval: v1.14.0 → production (0 of 1) by sam" in line
        assert line.rstrip().endswith("a decides · req-0001")
        dialog = await open_dialog(pilot, "a", ApproveDialog, wait)
        plan = text_of(dialog.query_one("#plan", Static))
        assert "✓ pass metric:auc:min" in plan  # gates with their numbers, in words
        assert "vs 0.8" in plan and "✓ pass ci" in plan
        assert "request req-0001 by sam" in plan and "recall up, canary clean" in plan
        assert "0 of 1 approval(s) counted" in plan
        assert "✗ you may not approve" in plan
        assert "sam requested req-0001; someone else must approve it (four-eyes)" in plan
        assert dialog.query_one("#confirm", Button).disabled
        assert "four-eyes" in text_of(dialog.query_one("#hint", Static))
        assert dialog.query_one("#reject", Button).label.plain == "Withdraw"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)


async def test_approving_as_another_user_executes_and_moves_the_registry(
    make_app, wait, world, request_promotion
):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app(user="rita", model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        dialog = await open_dialog(pilot, "a", ApproveDialog, wait)
        assert "✓ you may approve as rita" in text_of(dialog.query_one("#plan", Static))
        assert not dialog.query_one("#confirm", Button).disabled
        await pilot.press(*"canary ok", "enter")
        await until(pilot, lambda: dialog.done, "the approval")
        assert "✓ executed" in text_of(dialog.query_one("#outcome", Static))
        assert world.models[CHURN].prod == 14
        assert ("approve", "approved") in actions(world)
        assert actions(world)[-2:] == [("intent", "pending"), ("outcome", "executed")]
        approval = next(e for e in world.audit_log if e.action == "approve" and e.actor == "rita")
        assert approval.reason == "canary ok"
        assert approval.details["evidence_hash"] == dialog.plan.evidence_hash
        await pilot.press("escape")
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        assert screen.production == "v1.14.0"  # the screen was refreshed
        assert not screen.query_one("#requests").has_class("-shown")


async def test_overview_counts_requests_waiting_for_approval(make_app, wait, request_promotion):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        assert screen.rows[CHURN].approvals == 1
        assert screen.rows["fraud-detector"].approvals == 0
        assert "1 request waiting for approval" in text_of(screen.query_one("#detail"))


async def test_an_unreadable_audit_log_shows_approvals_as_unknown_not_as_none(
    make_app, wait, world, request_promotion
):
    await request_promotion("sam", CHURN, "v1.14.0")
    world.faults.fail("audit")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        assert screen.rows[CHURN].approvals == UNKNOWN_APPROVALS
        assert screen.rows["fraud-detector"].approvals == UNKNOWN_APPROVALS
        assert any("Approvals unknown" in n.message and "audit peer did not answer" in n.message
                   for n in app._notifications)  # fmt: skip
        world.faults.heal("audit")
        await pilot.press("r")
        await wait(pilot)
        assert screen.rows[CHURN].approvals == 1


# -- rollback -----------------------------------------------------------------------------------


async def test_rollback_needs_reason_and_the_typed_model_name(make_app, wait, world):
    app = make_app(model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        dialog = await open_dialog(pilot, "R", RollbackDialog, wait)
        assert (dialog.plan.from_version, dialog.plan.version) == ("v1.10.0", "v1.8.0")
        plan = text_of(dialog.query_one("#plan", Static))
        assert "production of churn-predictor: v1.10.0 → v1.8.0" in plan
        assert "shown, never blocking" in plan
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled
        await pilot.press(*"p95 doubled after release: INC-42/b")  # `:` and `/` are text here
        assert confirm.disabled  # the model name is still missing
        await pilot.press("tab", *"churn-predicto")
        await pilot.pause()
        assert confirm.disabled
        assert "type the model name churn-predictor exactly" in text_of(dialog.query_one("#hint"))
        await pilot.press("enter")  # not yet: nothing runs
        await pilot.pause()
        assert world.models[CHURN].prod == 10 and not dialog.busy and not dialog.done
        await pilot.press("r")
        await pilot.pause()
        assert not confirm.disabled
        await pilot.press("enter")
        await until(pilot, lambda: dialog.done, "the rollback")
        assert world.models[CHURN].prod == 8
        tail = [(e.action, e.details.get("op", ""), e.result) for e in world.audit_log[-3:]]
        assert tail == [
            ("request", "", "pending"),
            ("intent", "rollback", "pending"),
            ("outcome", "rollback", "executed"),
        ]
        assert world.audit_log[-3].reason == "p95 doubled after release: INC-42/b"
        await pilot.press("escape")
        await wait(pilot)
        assert app.screen.production == "v1.8.0"


# -- promote ------------------------------------------------------------------------------------


async def test_promote_previews_the_audit_steps_and_needs_a_reason(make_app, wait, world):
    app = make_app(model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("down")  # v1.13.0, in staging: production is next
        await wait(pilot)
        dialog = await open_dialog(pilot, "p", PromoteDialog, wait)
        assert dialog.stage == "production"
        plan = text_of(dialog.query_one("#plan", Static))
        assert "production of churn-predictor: v1.10.0 → v1.13.0" in plan
        assert "audit: promote request (reason, gates, evidence" in plan
        assert "audit: intent (promote) written and synced before any change" in plan
        assert "registry: production of churn-predictor v1.10.0 -> v1.13.0" in plan
        assert "✗ FAIL schema" in plan  # fields changed: an acknowledgement is needed
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled and "schema" in text_of(dialog.query_one("#hint"))
        await pilot.press("tab", "space")  # the acknowledgement checkbox
        await until(pilot, lambda: dialog.ack and dialog.plan and dialog.plan.gates, "ack")
        await wait(pilot)
        assert "✓ pass schema" in text_of(dialog.query_one("#plan", Static))
        assert confirm.disabled
        assert "a reason is required" in text_of(dialog.query_one("#hint"))
        await pilot.press("shift+tab", *"weekly release", "enter")
        await until(pilot, lambda: dialog.done, "the request")
        assert "✓ requested" in text_of(dialog.query_one("#outcome", Static))
        request = world.audit_log[-1]
        assert (request.action, request.reason) == ("request", "weekly release")
        assert request.details["ack_schema_change"] is True
        assert world.models[CHURN].prod == 10  # waits for an approval


# -- compare ------------------------------------------------------------------------------------


async def test_compare_marked_versions_with_deltas(make_app, wait):
    app = make_app(model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("space", "space")  # marks v1.14.0 and v1.13.0
        await wait(pilot)
        assert app.screen.table.marked == ["v1.14.0", "v1.13.0"]
        await pilot.press("c")
        await until(pilot, lambda: getattr(app.screen, "comparison", None), "the comparison")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        c = screen.comparison
        assert [x.version for x in c.candidates] == ["v1.14.0", "v1.13.0"]
        assert c.base_version == "v1.10.0"
        body = text_of(screen.query_one("#comparison", Static))
        assert "production v1.10.0" in body
        assert "▲+" in body  # auc went up: better, said by the arrow and the sign
        assert "TREND ACROSS VERSIONS" in body and "15 versions" in body
        assert "CODE" in body and "SCHEMA" in body and "SAMPLING" in body
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)


# -- audit log ----------------------------------------------------------------------------------


async def test_audit_screen_filters_and_verifies(make_app, wait, world):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        screen = app.screen
        await until(pilot, lambda: screen.table.row_count == 6, "the events")
        assert screen.table.keys[0] == 6  # newest first
        await pilot.press("slash", *"approve")
        await pilot.pause()
        assert [screen.events[k].action for k in screen.table.keys] == ["approve"] * 3
        await pilot.press("enter", "u")  # and only bob's (the highlighted event's actor)
        await pilot.pause()
        assert screen.filter_text == "approve actor:bob"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.table.row_count == 6
        await pilot.press("v")
        await until(pilot, lambda: screen.check is not None, "verification")
        assert "✓ chain verified: 6 records" in text_of(screen.query_one("#verify"))
        world.tamper(3, reason="edited afterwards")
        await pilot.press("v")
        await until(pilot, lambda: screen.bad_seq == 3, "the failed verification")
        status = text_of(screen.query_one("#verify"))
        assert "✗ verification FAILED at seq 3 (hash mismatch)" in status
        assert screen.table.cursor_key == 3
        await pilot.press("enter")  # the event's model, on its version
        await until(pilot, lambda: isinstance(app.screen, ModelScreen), "the model screen")
        assert app.screen.model_name == screen.events[3].model


# -- who may act --------------------------------------------------------------------------------


async def test_viewer_gets_no_changing_actions(make_app, wait):
    app = make_app(user="vic", model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        keys = {b.binding.key for b in app.screen.active_bindings.values()}
        assert "c" in keys and not {"a", "p", "R"} & keys
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)
        assert any(
            n.message == "Rollback is not available: vic is a viewer" for n in app._notifications
        )
        await pilot.press("A")  # reading is for everyone: the log, filtered to this model
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        assert app.screen.filter_text == f"model:{CHURN}"


async def test_a_failing_backend_is_said_in_words_in_the_dialog(make_app, wait, world):
    from console.ports import Unreachable

    app = make_app(model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        world.faults.fail("registry", Unreachable("gto: git is locked", backend="gto"))
        dialog = await open_dialog(pilot, "R", RollbackDialog, wait)
        assert dialog.plan is None
        assert "✗ failed: registry: gto: gto: git is locked" in text_of(dialog.query_one("#plan"))
        assert dialog.query_one("#confirm", Button).disabled
        assert "nothing to confirm" in text_of(dialog.query_one("#hint"))
        await pilot.press("escape")
        world.faults.fail("audit", Unreachable("audit.sqlite is locked", backend="sqlite-audit"))
        await pilot.press("a")
        await until(
            pilot,
            lambda: any("audit.sqlite is locked" in n.message for n in app._notifications),
            "the approve refusal",
        )
        assert isinstance(app.screen, ModelScreen)


async def test_open_intents_are_reconciled_on_start(make_app, wait, world):
    world.append_audit(
        AuditEvent(
            seq=0, at=NOW - timedelta(hours=1), actor="sam", action="intent", model=CHURN,
            version="v1.11.0", stage="production", before="v1.10.0", after="v1.11.0",
            result="pending", request_id="req-lost",
            details={"op": "promote", "expected": "v1.10.0", "target": "v1.11.0"},
        )
    )  # fmt: skip
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        notes = [n.message for n in app._notifications if n.title == "Reconciled"]
        assert notes and "reconciled intent seq 7" in notes[0] and "failed" in notes[0]
        assert world.audit_log[-1].action == "outcome"
