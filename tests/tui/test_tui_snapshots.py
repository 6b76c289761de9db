"""SVG snapshots of the overview and the model screen (two sizes, two themes), and of the
3 a.m. set: a waiting request, a worse metric, the approve and rollback dialogs, the audit log
(two sizes, with and without NO_COLOR).

Deterministic: fake backends with seeded data, a frozen clock, refresh timers off. Update with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` after an intended layout change.
"""

from __future__ import annotations

import asyncio

import pytest

SIZES = [(80, 24), (120, 40)]
THEMES = ["dark", "light"]


def _settled(wait):
    async def run_before(pilot) -> None:
        await wait(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_overview_snapshot(snap_compare, make_app, wait, size, theme):
    app = make_app(theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=_settled(wait))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_model_screen_snapshot(snap_compare, make_app, wait, size, theme):
    app = make_app(theme=theme, model="churn-predictor")
    assert snap_compare(app, terminal_size=size, run_before=_settled(wait))


# -- the 3 a.m. set (issue 19): 80x24 and 120x40, in the default theme and with NO_COLOR ------

COLOURS = ["default", "no-color"]


@pytest.fixture
def colour(request, monkeypatch):
    """NO_COLOR as a terminal over ssh sets it (Textual reads it when the app is built)."""
    if request.param == "no-color":
        monkeypatch.setenv("NO_COLOR", "1")
    return request.param


def _three_am(test):
    test = pytest.mark.parametrize("colour", COLOURS, indirect=True)(test)
    return pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")(test)


@_three_am
def test_overview_with_a_waiting_request_snapshot(
    snap_compare, make_app, wait, request_promotion, size, colour
):
    asyncio.run(request_promotion("sam", "churn-predictor", "v1.14.0"))
    app = make_app()
    assert snap_compare(app, terminal_size=size, run_before=_settled(wait))


@_three_am
def test_version_with_a_worse_metric_snapshot(
    snap_compare, make_app, worse_world, wait, size, colour
):
    app = make_app(over=worse_world, model="price-ranker")
    assert snap_compare(app, terminal_size=size, run_before=_settled(wait))


@_three_am
def test_approve_dialog_snapshot(snap_compare, make_app, wait, request_promotion, size, colour):
    asyncio.run(request_promotion("sam", "churn-predictor", "v1.14.0"))
    app = make_app(user="rita", model="churn-predictor")

    async def run_before(pilot) -> None:
        await wait(pilot)
        await pilot.press("a")
        await _dialog_ready(pilot, wait)
        await pilot.press("tab")  # the focus on Approve: its mark says so

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@_three_am
def test_rollback_dialog_snapshot(snap_compare, make_app, wait, size, colour):
    app = make_app(model="churn-predictor")

    async def run_before(pilot) -> None:
        await wait(pilot)
        await pilot.press("R")
        await _dialog_ready(pilot, wait)
        await pilot.press(*"p95 doubled", "tab", *"churn")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@_three_am
def test_audit_log_snapshot(snap_compare, make_app, wait, request_promotion, size, colour):
    asyncio.run(request_promotion("sam", "churn-predictor", "v1.14.0"))
    app = make_app(user="rita")

    async def run_before(pilot) -> None:
        await wait(pilot)
        release = pilot.app.release
        plan = await release.plan_approval("churn-predictor", "v1.14.0", "production")
        await release.approve(
            "churn-predictor", "v1.14.0", "production", evidence_hash=plan.evidence_hash
        )
        await pilot.press("A")
        await wait(pilot)
        # The request's row: "executed" now, its reason, the SSH client. (Not the intent's:
        # the stage lock it records names the process, so its hash differs per run.)
        await pilot.press("down", "down", "down")
        await wait(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def _dialog_ready(pilot, wait) -> None:
    from console.tui.screens.dialog import ActionDialog

    for _ in range(100):
        screen = pilot.app.screen
        if isinstance(screen, ActionDialog) and (screen.plan is not None or screen.plan_error):
            break
        await pilot.pause(0.05)
    from textual.widgets import Input

    for field in pilot.app.screen.query(Input):  # a blinking cursor is drawn or not by timing
        field.cursor_blink = False
    await wait(pilot)
