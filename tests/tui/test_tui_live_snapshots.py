"""SVG snapshots of live evidence on the fakes' incident story (tests/tui/test_tui_live.py):
the overview, the model screen's Live panel with staging beside production, the compare
screen's LIVE section and the promote dialog asking to acknowledge a rolled-back version, at
80x24 and 120x40. Update with `--snapshot-update` after an intended layout change."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Input

SIZES = [(80, 24), (120, 40)]
RANKER = "price-ranker"


async def _on_candidate(pilot: Any, wait: Any) -> None:
    await wait(pilot)
    pilot.app.screen.select_version("v1.13.0")
    await wait(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_incident_overview_snapshot(snap_compare, incident_app, wait, size):
    async def run_before(pilot: Any) -> None:
        await wait(pilot)
        pilot.app.screen.table.move_to(RANKER)
        await wait(pilot)

    assert snap_compare(incident_app(), terminal_size=size, run_before=run_before)


def test_incident_overview_no_color_snapshot(snap_compare, incident_app, wait, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    async def run_before(pilot: Any) -> None:
        await wait(pilot)

    assert snap_compare(incident_app(), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_live_panel_with_staging_beside_production_snapshot(snap_compare, incident_app, wait, size):
    async def run_before(pilot: Any) -> None:
        await _on_candidate(pilot, wait)
        await pilot.press("3")
        await wait(pilot)

    app = incident_app(model=RANKER)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_live_section_snapshot(snap_compare, incident_app, wait, size):
    async def run_before(pilot: Any) -> None:
        await _on_candidate(pilot, wait)
        await pilot.press("c")
        for _ in range(100):
            if getattr(pilot.app.screen, "comparison", None) is not None:
                break
            await pilot.pause(0.05)
        await wait(pilot)
        if size == (80, 24):  # the LIVE section, below the metrics
            pilot.app.screen.query_one("#compare").scroll_to(y=9, animate=False)
            await wait(pilot)

    app = incident_app(model=RANKER)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_promote_rolled_back_version_snapshot(snap_compare, incident_app, wait, size):
    from console.tui.screens.dialog import ActionDialog

    async def run_before(pilot: Any) -> None:
        await _on_candidate(pilot, wait)
        await pilot.press("p")
        for _ in range(100):
            screen = pilot.app.screen
            if isinstance(screen, ActionDialog) and screen.plan is not None:
                break
            await pilot.pause(0.05)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await wait(pilot)

    app = incident_app(model=RANKER)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
