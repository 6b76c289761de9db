"""SVG snapshots of the overview and the model screen: two sizes, two themes.

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


def test_approve_dialog_snapshot(snap_compare, make_app, wait, request_promotion):
    asyncio.run(request_promotion("sam", "churn-predictor", "v1.14.0"))
    app = make_app(user="rita", model="churn-predictor")

    async def run_before(pilot) -> None:
        await wait(pilot)
        await pilot.press("a")
        await _dialog_ready(pilot, wait)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_rollback_dialog_snapshot(snap_compare, make_app, wait):
    app = make_app(model="churn-predictor")

    async def run_before(pilot) -> None:
        await wait(pilot)
        await pilot.press("R")
        await _dialog_ready(pilot, wait)
        await pilot.press(*"p95 doubled", "tab", *"churn")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


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
