"""The 3 a.m. test (issue 19): at 80x24, without colour, nothing a release manager needs is
hidden: a waiting request, a version's worst change, what Enter does, which button has the
focus, who may approve, how a request ended, and what Esc does."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from test_tui_release import open_dialog, until
from textual.widgets import Button, Static

from console.tui.screens.approve import ApproveDialog
from console.tui.screens.audit import AuditScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.promote import PromoteDialog
from console.tui.screens.rollback import RollbackDialog
from console.tui.widgets.keybar import KeyBar

CHURN = "churn-predictor"
PRICE = "price-ranker"  # in worse_world (conftest): three key metrics, latency worse


def shown(widget: Any) -> str:
    """What a Static draws at its own width on screen, as plain text (cut as on screen)."""
    width = widget.content_region.width or 80
    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


def bar(widget: Any) -> str:
    """What a widget that renders itself (the key bar) says, as plain text."""
    return str(widget.render())


def screen_text(app: Any) -> str:
    """The whole terminal as text, the screens below a see-through one included."""
    width = app.size.width
    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text()


# -- 1. narrow terminals hide nothing that matters ---------------------------------------------


async def test_overview_at_80_columns_keeps_the_waiting_request_and_says_what_is_hidden(
    make_app, wait, request_promotion
):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        table = app.screen.table
        layout = table.column_layout()
        assert "appr" in [c.key for c, _ in layout.shown]  # dropped at <= 100 columns before
        assert layout.hidden, "80 columns do not hold every column"
        header = screen_text(app).splitlines()[1]
        assert header.rstrip().endswith(f"+{len(layout.hidden)}>")
        assert "> More columns" in bar(app.screen.query_one(KeyBar))
        first_hidden = layout.hidden[0].key
        await pilot.press("greater_than_sign")
        await pilot.pause()
        assert first_hidden in [c.key for c, _ in table.column_layout().shown]
        assert "appr" in [c.key for c, _ in table.column_layout().shown]
        for _ in range(layout.choices):  # and round to the usual columns
            await pilot.press("greater_than_sign")
        await pilot.pause()
        assert table.column_layout().shown == layout.shown
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert "More columns" in shown(app.screen.query_one("#help-body", Static))


async def test_no_marker_and_no_key_when_every_column_fits(make_app, wait):
    app = make_app()
    async with app.run_test(size=(200, 40)) as pilot:
        await wait(pilot)
        assert app.screen.table.column_layout().hidden == ()
        assert "More columns" not in bar(app.screen.query_one(KeyBar))


async def test_versions_table_at_80_columns_shows_each_versions_worst_change(
    make_app, worse_world, wait
):
    app = make_app(over=worse_world, model=PRICE)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        screen = app.screen
        keys = [c.key for c, _ in screen.table.column_layout().shown]
        assert "m:latency_ms" not in keys and "worst" in keys
        newest = screen.table.keys[0]
        lines = [ln for ln in screen_text(app).splitlines() if f" {newest} " in ln]
        assert lines and "▼+" in lines[0] and "laten" in lines[0], lines
    app = make_app(over=worse_world, model=PRICE)
    async with app.run_test(size=(150, 40)) as pilot:
        await wait(pilot)
        keys = [c.key for c, _ in app.screen.table.column_layout().shown]
        assert "m:latency_ms" in keys and "worst" not in keys  # it stands in only when needed


async def test_model_header_at_80x24_keeps_the_candidates_and_the_request_id(
    make_app, wait, request_promotion
):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app(model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert "candidates waiting" in shown(screen.query_one("#stages"))
        assert "a decides · req-0001" in shown(screen.query_one("#requests"))


async def test_the_stage_ages_count_on_without_a_refresh(make_app, wait, clock):
    app = make_app(model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        before = shown(app.screen.query_one("#stages"))
        clock.advance(days=3)
        await pilot.pause(1.3)
        after = shown(app.screen.query_one("#stages"))
        assert before != after


# -- 2. Enter's action is named; every state reads without colour ------------------------------


async def test_enter_names_the_action_and_the_focus_is_marked(make_app, wait, request_promotion):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app(user="rita", model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        dialog = await open_dialog(pilot, "a", ApproveDialog, wait)
        assert "Enter: approve v1.14.0 → production" in shown(dialog.query_one("#hint"))
        assert "enter confirms" not in str(dialog.query_one("#dialog").border_subtitle)
        await pilot.press("tab")  # the comment field to the Approve button
        await pilot.pause()
        approve, cancel = dialog.query_one("#confirm", Button), dialog.query_one("#cancel")
        assert approve.has_focus
        assert str(approve.render()).startswith("\u203a Approve")
        assert str(cancel.render()).startswith("  Cancel")
        await pilot.press("tab", "tab")  # Reject, Cancel
        await pilot.pause()
        assert cancel.has_focus and str(cancel.render()).startswith("\u203a Cancel")
        assert "Enter: cancel" in shown(dialog.query_one("#hint"))


async def test_rollback_names_the_move_enter_makes(make_app, wait):
    app = make_app(model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        dialog = await open_dialog(pilot, "R", RollbackDialog, wait)
        await pilot.press(*"p95 doubled", "tab", *CHURN)
        await pilot.pause()
        hint = shown(dialog.query_one("#hint"))
        assert "Enter: roll production back v1.10.0 → v1.8.0" in hint


async def test_schema_acknowledgement_reads_without_colour(make_app, wait):
    app = make_app(model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("down")
        await wait(pilot)
        dialog = await open_dialog(pilot, "p", PromoteDialog, wait)
        box = dialog.query_one("#ack")
        assert "[ ]" in str(box.render()) and "fields changed)" in str(box.render())
        assert ".0 field" not in str(box.render())  # "(3.0 fields)" before
        await pilot.press("tab")
        await pilot.pause()
        assert "\u203a [ ]" in str(box.render())
        await pilot.press("space")
        await until(pilot, lambda: dialog.ack, "the tick")
        assert "[x]" in str(box.render())
        plan = shown(dialog.query_one("#plan", Static))
        assert "--ack-schema-change" not in plan  # a CLI flag means nothing in the dialog


async def test_a_toast_does_not_cover_the_next_dialogs_buttons(make_app, wait):
    app = make_app(model=CHURN)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        app.notify("Promote: requested", timeout=30)
        await pilot.pause()
        assert app._notifications
        await open_dialog(pilot, "R", RollbackDialog, wait)
        assert not list(app._notifications)


# -- 4. the audit log, and Esc --------------------------------------------------------------------


async def test_audit_rows_show_how_a_request_ended_and_why(make_app, wait, request_promotion):
    await request_promotion("sam", CHURN, "v1.14.0")  # "recall up, canary clean"
    app = make_app(user="rita")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        plan = await app.release.plan_approval(CHURN, "v1.14.0", "production")
        done = await app.release.approve(
            CHURN, "v1.14.0", "production", evidence_hash=plan.evidence_hash
        )
        assert done.status == "executed", done.message
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit log")
        screen = app.screen
        await until(pilot, lambda: screen.events, "the events")
        text = screen_text(app)
        request = next(ln for ln in text.splitlines() if " request " in ln)
        assert "executed" in request and "pending" not in request
        outcome = next(ln for ln in text.splitlines() if " promote " in ln and "executed" in ln)
        assert "recall up" in outcome  # the request's reason on the row that executed it
        assert CHURN in outcome  # the model whole at 80 columns
        screen.table.move_to(max(screen.events))
        await pilot.pause()
        detail = shown(screen.query_one("#detail"))
        assert "from 192.0.2.7 (ssh)" in detail


async def test_esc_says_what_it_does_on_the_audit_log(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit log")
        screen = app.screen
        keys = screen.query_one(KeyBar)
        assert "esc Back" in bar(keys)
        await pilot.press("m")  # keep only this model: a filter
        await pilot.pause()
        assert screen.filter_text and "esc Clear filter" in bar(keys)
        await pilot.press("escape")
        await pilot.pause()
        assert not screen.filter_text and isinstance(app.screen, AuditScreen)
        assert "esc Back" in bar(keys)


# -- 5. small things --------------------------------------------------------------------------------


async def test_colon_prompt_and_stage_picker_leave_the_screen_visible(make_app, wait):
    app = make_app(model="demand-forecast")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        await pilot.press("colon")
        await pilot.pause()
        text = screen_text(app)
        assert "demand-forecast" in text and "VERSION" in text, text
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("down", "down")  # a version in no stage: promote asks which stage
        await wait(pilot)
        await pilot.press("p")
        await until(pilot, lambda: "Promote" in screen_text(app), "the stage picker")
        assert "VERSION" in screen_text(app)


async def test_help_says_ci_once(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = shown(app.screen.query_one("#help-body", Static))
        assert "CI CI" not in text and "CI runs loading" in text


async def test_a_theme_change_repaints_the_audit_log_title(make_app, wait):
    from console.tui.palette import palette_of

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit log")
        await wait(pilot)
        app.theme = "light"
        await pilot.pause()
        title = app.screen.query_one("#title").content
        heading = palette_of(app).heading
        cells = title.columns[0]._cells[0]  # the left part: where you are
        assert any(span.style == heading for span in cells.spans), cells.spans


async def test_no_demo_colleague_outside_a_demo_workspace(make_app, wait, request_promotion):
    await request_promotion("sam", CHURN, "v1.14.0")
    app = make_app(user="sam", model=CHURN)  # sam asked: sam may not approve
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        assert app.demo_workspace is False
        dialog = await open_dialog(pilot, "a", ApproveDialog, wait)
        assert dialog.plan.may_approve and dialog.colleague is None
        assert not dialog.query_one("#colleague", Button).display
        plan = shown(dialog.query_one("#plan", Static))
        assert "who may approve: rita, erin (release manager or admin)" in plan.replace("\n", " ")
        assert "demo" not in plan
