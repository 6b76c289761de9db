"""services.live: series and health through the metrics port, with stale-if-error sections."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from console.ports import Unreachable
from console.services.live import LIVE_METRICS, LiveService
from console.services.overview import OverviewService


def fakes() -> Any:
    if "tui_fakes" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tui" / "fakes.py"
        spec = importlib.util.spec_from_file_location("tui_fakes", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["tui_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["tui_fakes"]


async def test_live_view_has_every_metric_and_health():
    f = fakes()
    ws, _ = f.make_workspace()
    live = LiveService(OverviewService(ws, clock=lambda: f.NOW))
    view = await live.live("churn-predictor", points=30)
    assert view.stage == "production" and view.version == "v1.10.0"
    assert set(view.series) == set(LIVE_METRICS)
    assert all(len(s.points) == 30 for s in view.series.values())
    assert view.section.ok and view.fetched_at == f.NOW


async def test_failing_metrics_keep_the_last_good_series_with_its_age():
    f = fakes()
    ws, world = f.make_workspace()
    clock = f.MutableClock()
    live = LiveService(OverviewService(ws, clock=clock))
    first = await live.live("churn-predictor")
    world.faults.fail("metrics", Unreachable("scrape refused", backend="scrape"))
    clock.advance(minutes=2)
    second = await live.live("churn-predictor")
    assert not second.section.ok
    assert second.section.error == "scrape: scrape refused"
    assert second.section.fetched_at == first.fetched_at == clock() - timedelta(minutes=2)
    assert second.series == first.series  # stale, not empty


async def test_trend_and_unconfigured_metrics():
    f = fakes()
    ws, _ = f.make_workspace()
    series, section = await LiveService(OverviewService(ws)).trend("fraud-detector", points=12)
    assert series is not None and len(series.points) == 12 and section.ok
    del ws.backends["metrics"]
    view = await LiveService(OverviewService(ws)).live("fraud-detector")
    assert view.series == {} and view.section.configured is False
