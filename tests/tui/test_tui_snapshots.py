"""SVG snapshots of the overview and the model screen: two sizes, two themes.

Deterministic: fake backends with seeded data, a frozen clock, refresh timers off. Update with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` after an intended layout change.
"""

from __future__ import annotations

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
