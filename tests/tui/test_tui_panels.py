"""Pilot tests: panels fill in as data arrives; a failing backend dims only its own panel."""

from __future__ import annotations

import asyncio
from typing import Any

from tui_fakes import FakeWorld, make_workspace

from console.ports import Unreachable
from console.tui.app import ConsoleApp
from console.tui.launch import Launch
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import HEALTH_READS, OverviewScreen

CI_DOWN = Unreachable(
    "runs folder /srv/ci-runs is missing",
    backend="runs-folder",
    hint="mount the CI share or fix backends.ci.path",
)


async def test_failing_ci_dims_only_its_panel_with_reason_and_age(make_app, wait, world, clock):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        ci, lineage = screen.query_one("#ci"), screen.query_one("#lineage")
        assert ci.problems == [] and ci.detail is not None

        world.faults.fail("ci", CI_DOWN)
        clock.advance(minutes=3)
        await pilot.press("r")
        await wait(pilot)
        assert ci.has_class("-problem")
        assert len(ci.problems) == 1
        problem = ci.problems[0]
        assert "runs folder /srv/ci-runs is missing" in problem
        assert "mount the CI share" in problem
        assert "showing data from 3m ago" in problem
        assert ci.detail.ci  # the last good runs are still shown
        assert not lineage.has_class("-problem")
        assert lineage.lineage is not None and lineage.lineage.code is not None
        assert not screen.query_one("#live").has_class("-problem")

        calls = world.faults.calls["ci.runs_for"]
        world.faults.heal("ci")
        await pilot.press("r")
        await wait(pilot)
        assert world.faults.calls["ci.runs_for"] > calls  # `r` retried
        assert not ci.has_class("-problem") and ci.problems == []


async def test_failing_metrics_marks_overview_rows_and_says_why(make_app, wait, world):
    world.faults.fail(
        "metrics", Unreachable("http://127.0.0.1:9/metrics refused", backend="scrape")
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        churn = screen.rows["churn-predictor"]
        assert [p.kind for p in churn.problems] == ["metrics"]
        assert churn.production == "v1.10.0"  # the registry still answers
        assert churn.ci == "success"
        detail = str(screen.query_one("#detail").render())
        assert "127.0.0.1:9/metrics refused" in detail
        assert "no data yet" in detail


async def test_slow_backend_does_not_hold_the_first_frame(world, clock, wait):
    gate = asyncio.Event()
    world.faults.gates["registry"] = gate  # the registry answers only when the test says so
    ws, _ = make_workspace(world)
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        assert screen.table.row_count == 0  # the skeleton is up, the registry has not answered
        assert "loading models" in screen.table.render_line(1).text
        gate.set()
        await wait(pilot)
        assert screen.table.row_count == 4


async def test_workspace_opens_in_a_worker_after_the_first_frame(monkeypatch, clock, wait):
    import console.services.workspace as workspace_module

    world = FakeWorld()
    ws, _ = make_workspace(world)
    opened: list[str] = []

    def fake_open(config, catalog=None):
        opened.append("open")
        return ws

    monkeypatch.setattr(workspace_module, "open_workspace", fake_open)
    app = ConsoleApp(ws.config, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        assert opened == ["open"]
        assert app.screen.table.row_count == 4
    assert world.faults.calls["registry.aclose"] == 1  # the app closes what it opened


async def test_bad_config_exits_with_the_message(monkeypatch, clock, capsys):
    import console.services.workspace as workspace_module
    from console.config import ConfigError

    def broken(config, catalog=None):
        raise ConfigError("cd4ml-console.toml: backends.ci.type: no backend plugin named 'jenkns'")

    monkeypatch.setattr(workspace_module, "open_workspace", broken)
    ws, _ = make_workspace()
    app = ConsoleApp(ws.config, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
    assert app.return_code == 2
    assert "no backend plugin named 'jenkns'" in capsys.readouterr().err


async def test_ten_thousand_versions_fetch_only_what_is_visible(clock, wait):
    world = FakeWorld(big_model_versions=10_000)
    ws, _ = make_workspace(world)
    launch = Launch(model="churn-predictor")
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0, launch=launch)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert screen.table.row_count == 10_000
        assert len(screen.details) < 40
        assert world.faults.calls["data.metrics"] < 60
        await pilot.press("pagedown", "pagedown", "G")
        await wait(pilot)
        assert screen.table.cursor_key == "v1.0.0"
        assert "v1.0.0" in screen.details
        assert len(screen.details) < 80


async def test_overview_with_a_thousand_models_loads_visible_rows_first(clock, wait):
    """The rows on screen are read first, in one batch; then the rest, a batch at a time,
    until every row is filled."""
    world = FakeWorld(n_models=1000)
    ws, _ = make_workspace(world)
    asked: list[str] = []
    registry = ws.backends["registry"]
    versions = registry.versions

    async def recording(model: str):
        asked.append(model)
        return await versions(model)

    registry.versions = recording
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert screen.table.row_count == 1000
        first = len(screen.table.visible_keys(margin=5))
        assert 10 < first < 60
        assert set(asked[:first]) == {str(k) for k in screen.table.visible_keys(margin=5)}
        for _ in range(600):  # the background batches (a minute at most on a loaded machine)
            if len(screen.rows) == 1000:
                break
            await pilot.pause(0.1)
        assert len(screen.rows) == 1000 and sorted(asked) == sorted(set(asked))
        await pilot.press("end")
        await wait(pilot)
        last = screen.table.keys[-1]
        assert screen.rows[last].loaded


async def test_refresh_interval_updates_live_panel(make_app, wait, world):
    app = make_app(model="churn-predictor", refresh_seconds=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        before = world.faults.calls["metrics.series"]
        await pilot.pause(0.5)
        await wait(pilot)
        assert world.faults.calls["metrics.series"] > before


async def test_no_color_keeps_better_and_worse_readable(monkeypatch, world, clock, wait):
    monkeypatch.setenv("NO_COLOR", "1")
    ws, _ = make_workspace(world)
    launch = Launch(model="churn-predictor")
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0, launch=launch)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        assert app.no_color
        table = app.screen.table
        lines = [table.render_line(y).text for y in range(1, 8)]
        assert any("▲+" in line for line in lines)  # better: a glyph and a sign, not a colour
        assert any("▼\u2212" in line for line in lines)
        assert any("base" in line for line in lines)


async def test_overview_tick_refreshes_live_health_only(make_app, wait, world):
    from console.tui.screens.overview import FULL_REFRESH_EVERY

    app = make_app()  # no interval timer: the test ticks by hand
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        versions_calls = world.faults.calls["registry.versions"]
        health_calls = world.faults.calls["metrics.health"]
        screen._tick()
        await wait(pilot)
        assert world.faults.calls["metrics.health"] > health_calls
        assert world.faults.calls["registry.versions"] == versions_calls
        screen._ticks = FULL_REFRESH_EVERY - 1
        screen._tick()
        await wait(pilot)
        assert world.faults.calls["registry.versions"] > versions_calls


async def test_a_thousand_rows_read_their_rollback_records_a_few_at_a_time(clock, wait):
    """Each row's rollback records (the audit log, per model) are read in a bounded queue,
    not all at once: 1,000 reads in flight together held ~15 MB more at the peak (bench: TUI
    peak RSS, all rows paged through), for no gain (the SQLite store answers one at a time)."""
    world = FakeWorld(n_models=1000)
    ws, _ = make_workspace(world)
    audit = ws.backends["audit"]
    events = audit.events
    in_flight, most, asked = 0, 0, []

    async def counting(**kw: Any):
        nonlocal in_flight, most
        if kw.get("model") is None:  # the requests awaiting approval: one read of the log
            return await events(**kw)
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.001)
            return await events(**kw)
        finally:
            in_flight -= 1
            asked.append(kw.get("model"))

    audit.events = counting
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        for _ in range(600):  # the background batches (a minute at most on a loaded machine)
            if len(set(asked)) >= 1000:
                break
            await pilot.pause(0.1)
        assert len(set(asked)) == 1000  # every row's records were read
        assert most <= HEALTH_READS
