"""Pilot tests of live evidence in the TUI, on the fakes' incident story: price-ranker's staging
version was rolled back from production and its shadow figures breach the SLOs (p95 912 ms,
6 % errors); the other models are healthy. SLOs: p95 500 ms, 2 % errors, 100 requests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.console import Console
from textual.widgets import Button, Checkbox, Static

from console.tui.screens.compare import CompareScreen
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.screens.promote import PromoteDialog
from console.tui.screens.rollback import RollbackDialog
from console.tui.widgets.live import LivePanel

RANKER = "price-ranker"


def text_of(widget: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(widget.content if hasattr(widget, "content") else widget)
    return console.export_text()


def plain(cell: Any) -> str:
    """A table cell's text: a (text, style) pair, a Text or a str."""
    if isinstance(cell, tuple):
        return str(cell[0])
    return cell.plain if hasattr(cell, "plain") else str(cell)


async def until(pilot: Any, cond: Any, what: str) -> None:
    for _ in range(200):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_overview_tells_the_incident_without_opening_anything(incident_app, wait):
    app = incident_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        ranker = screen.rows[RANKER]
        cells = {k: plain(v) for k, v in screen._cells(RANKER).items()}
        assert cells["staging"] == "v1.13.0 ↩" and cells["status"] == "✗ staging"
        assert plain(screen._cells("fraud-detector")["status"]) == "✓ ok"
        assert [(h.stage, h.verdict) for h in ranker.health] == [
            ("staging", "breach"),
            ("production", "ok"),
        ]
        assert "✗ 1 breach" in text_of(screen.query_one("#title"))
        screen.table.move_to(RANKER)
        await wait(pilot)
        detail = text_of(screen.query_one("#detail", Static))
        assert "staging v1.13.0 ✗ BREACH: p95 912 ms > 500 ms; errors 6.0% > 2.0%" in detail
        assert "↩ v1.13.0 rolled back from production to v1.8.0" in detail
        assert "by erin: Rollback after INC-7" in detail


async def test_a_stage_without_slo_shows_no_verdict(make_app, wait):
    app = make_app()  # the default fakes: no [slo]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        assert plain(app.screen._cells("fraud-detector")["status"]) == "ok"
        detail = text_of(app.screen.query_one("#detail", Static))
        assert "✓ ok" not in detail and "unknown" not in detail


async def test_the_model_screen_puts_the_candidates_shadow_beside_production(incident_app, wait):
    app = incident_app(model=RANKER)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        stages = text_of(screen.query_one("#stages", Static))
        assert "staging v1.13.0 ↩" in stages and "✗ BREACH" in stages and "✓ ok" in stages
        assert plain(screen._cells("v1.13.0")["version"]) == "v1.13.0 ↩"
        assert plain(screen._cells("v1.12.0")["version"]) == "v1.12.0"
        screen.select_version("v1.13.0")
        await wait(pilot)
        incident = text_of(screen.query_one("#incident", Static))
        assert "↩ v1.13.0 was rolled back from production to v1.8.0" in incident
        panel = screen.query_one(LivePanel)
        await until(pilot, lambda: panel.other is not None, "the staging figures")
        await wait(pilot)
        assert panel.border_title == "Live · production + staging"
        body = text_of(panel.body())
        assert "production v1.8.0 ✓ ok" in body and "staging v1.13.0 ✗ BREACH" in body
        assert "staging: p95 912 ms > 500 ms; errors 6.0% > 2.0%" in body
        assert "shadow v1.13.0 vs v1.8.0: decision differs on 22.0% of" in body
        assert "PSI" in body
        charts = panel.query_one("#charts").charts
        latency = next(c for c in charts if c.metric == "latency_p95_ms")
        assert latency.other and latency.names == ("production", "staging")
        assert latency.xs[-1] == latency.other_xs[-1] == 0.0  # one time axis
        screen.select_version("v1.8.0")  # production itself: nothing beside it
        await wait(pilot)
        await until(pilot, lambda: panel.other is None, "production alone")
        assert not screen.query_one("#incident").has_class("-shown")


async def test_re_promoting_a_rolled_back_version_asks_for_the_acknowledgement(
    incident_app, wait, incident
):
    app = incident_app(model=RANKER)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        app.screen.select_version("v1.13.0")
        await wait(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PromoteDialog), "the dialog")
        dialog = app.screen
        await until(pilot, lambda: dialog.plan is not None, "the plan")
        await wait(pilot)
        box = dialog.query_one("#ack-rolled-back", Checkbox)
        assert not box.has_class("-hidden")
        assert "I acknowledge v1.13.0 was rolled back from production" in str(box.label)
        plan = text_of(dialog.query_one("#plan", Static))
        assert "✗ FAIL rolled_back" in plan and "Rollback after INC-7" in plan
        assert "✗ FAIL live:p95_ms:max" in plan and "912 ms > maximum 500 ms" in plan
        assert dialog.query_one("#confirm", Button).disabled
        box.value = True
        await until(pilot, lambda: dialog.ack_rolled_back and dialog.plan, "the new plan")
        await wait(pilot)
        plan = text_of(dialog.query_one("#plan", Static))
        assert "✓ pass rolled_back" in plan and "acknowledged" in plan
        assert dialog.query_one("#confirm", Button).disabled  # the live gates still hold it
        hint = text_of(dialog.query_one("#hint"))
        assert "blocked by 5 gates: schema, live:p95_ms:max, live:error_rate:max," in hint
        assert incident.models[RANKER].prod == 8


async def test_the_compare_screen_has_a_live_section(incident_app, wait):
    app = incident_app(model=RANKER)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        app.push_screen(CompareScreen(RANKER, ["v1.13.0"]))
        await until(pilot, lambda: app.screen.comparison is not None, "the comparison")
        await wait(pilot)
        text = text_of(app.screen.query_one("#comparison", Static))
        assert "LIVE VS PRODUCTION V1.8.0" in text
        assert "v1.13.0 (staging)" in text and "✗ BREACH" in text and "✓ ok" in text
        assert "912ms ▼+" in text  # worse than production, by how much
        assert "22.0% of" in text and "PSI" in text
        assert "↩ v1.13.0 was rolled back from production to v1.8.0" in text


async def watch_after_rollback(app: Any, pilot: Any, wait: Any, clock: Any) -> Any:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    app.watches.sleep = sleep
    await wait(pilot)
    await pilot.press("R")
    await until(pilot, lambda: isinstance(app.screen, RollbackDialog), "the dialog")
    dialog = app.screen
    await until(pilot, lambda: dialog.plan is not None, "the plan")
    await pilot.press(*"INC-8 drill", "tab", *RANKER, "enter")
    await until(pilot, lambda: dialog.done, "the rollback")
    await pilot.press("escape")
    await until(pilot, lambda: (s := app.watches.get(RANKER)) is not None and s.done, "watch")
    await wait(pilot)
    return app.watches.get(RANKER)


async def test_after_a_rollback_the_new_version_is_watched_healthy(
    incident_app, wait, clock, incident
):
    app = incident_app(model=RANKER)
    async with app.run_test(size=(120, 40)) as pilot:
        start = clock()
        state = await watch_after_rollback(app, pilot, wait, clock)
        assert (state.stage, state.version, state.outcome) == ("production", "v1.6.0", "healthy")
        assert state.message == "healthy after 10 min"
        assert clock() - start >= timedelta(minutes=10)
        line = text_of(app.screen.query_one("#watch", Static))
        assert "✓ production v1.6.0: healthy after 10 min" in line
        assert incident.models[RANKER].prod == 6


async def test_a_breach_after_the_change_says_roll_back(incident_app, wait, clock, incident):
    incident.breaching.add((RANKER, "v1.6.0"))
    app = incident_app(model=RANKER)
    async with app.run_test(size=(120, 40)) as pilot:
        state = await watch_after_rollback(app, pilot, wait, clock)
        assert state.outcome == "breach" and state.elapsed == 0
        line = text_of(app.screen.query_one("#watch", Static))
        assert "✗ production v1.6.0: breach: p95 912 ms > 500 ms; errors 6.0% > 2.0%" in line
        assert line.rstrip().endswith("— R to roll back")
