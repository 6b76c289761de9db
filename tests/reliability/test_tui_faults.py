"""Fault matrix in the TUI: the ConsoleApp (Pilot) over a real workspace (git, GTO tags, DVC
files, runs folder, SQLite audit) with the real HTTP plugin of a kind pointed at the fault
server. For every fault of the kind's share (every fault for every backend with CD4ML_LONG=1):

- the app stays up; while the read hangs, help opens and closes; the event loop never
  stalls LAG_LIMIT (the lag probe, less the time the loop's thread waited for a CPU);
- within timeout + 1 s of the model screen's mount the kind's panel says what is wrong in
  one line of words with the age of the data still shown ("5m ago"); so does the overview;
- the other panels have their data, without a problem;
- after the fault clears, `r` reads again and the panel shows fresh data.

Plus the code, data and audit kinds (a stand-in that fails or hangs), everything down at once
(from the start, and after good data), a flapping peer, one slow peer, and three faults found
here and fixed (registry down from the start, one hanging kind on a tall screen, a 50 MB
MLflow answer).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette

from console.config import load_config
from console.ports import AuditUnavailable, InvalidResponse, Unreachable
from console.services.workspace import open_workspace
from console.tui import format as fmt
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.screens.prompt import GotoScreen
from tests.release.conftest import make_workspace

from .conftest import LONG
from .faultserver import FAULTS, FaultServer, Hit, Reply
from .http_cases import BY_NAME, TOKEN_ENV, TRIGGER_ENV, make_scrape, scrape_good
from .tui_rig import (
    JUNK,
    LAG_LIMIT,
    Breakable,
    Clock,
    OwnLagProbe,
    Watch,
    assert_words,
    settle,
    shown,
    until,
)
from .tui_screens import (
    AGE,
    OLD,
    PANEL_OF,
    PANELS,
    SIZE,
    STEP,
    TIMEOUT,
    Rig,
    assert_others_fine,
    fresh,
    good_start,
    keys_answer,
    mounted_model,
    open_under_fault,
    overview_recovers,
    panel_has_data,
    problems,
    recover,
    row_problem,
    warm,
    warning,
)

# Every fault at least once in the TUI, each kind under transport, status and body faults.
SHARE = {
    "mlflow": ("refused", "blackhole", "http_500", "http_403", "wrong_shape"),
    "prometheus": ("dns", "read_timeout", "http_502", "http_401", "malformed"),
    "scrape": ("slow_body", "http_503", "empty"),
    "github-actions": ("http_429", "http_404", "huge"),
    "gitlab-ci": ("http_504", "refused", "wrong_shape"),
}
assert {f for share in SHARE.values() for f in share} == set(FAULTS)


# The timing bounds (timeout + 1 s to say why) are wall time, and a panel's read may wait for
# git processes first (the registry's tags), whose wait for a CPU no probe here can subtract:
# `make test` runs these after the parallel tests, with the machine to themselves.
pytestmark = [pytest.mark.quiet, pytest.mark.xdist_group("reliability-tui-faults")]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("tui-faults") / "ws").path


@pytest.fixture
async def rig(
    template: Path, tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    monkeypatch.setenv(TOKEN_ENV, "tok-reliability")
    monkeypatch.setenv(TRIGGER_ENV, "trig-reliability")
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))
    repo = tmp_path / "ws"
    shutil.copytree(template, repo, symlinks=True)
    config = load_config(None, repo).model_copy(update={"timeout_seconds": TIMEOUT})
    ws = open_workspace(config)
    for kind in ("code", "data", "audit"):
        ws.backends[kind] = Breakable(ws.backends[kind])
    route = f"{tmp_path.name}-scrape"
    fault_server.add(route, scrape_good)
    ws.backends["metrics"] = make_scrape(fault_server.url(route), tmp_path / "scrape")
    await warm(ws)
    rig = Rig(fault_server, ws, tmp_path, Clock())
    try:
        yield rig
    finally:
        for kind in list(rig.spare):
            await rig.heal(kind)
        for _kind, route in rig.cells.values():
            fault_server.cells[route].mode = "good"
        await ws.aclose()


async def fault_round(pilot: Any, rig: Rig, kind: str, fault: str) -> None:
    """One fault, from the overview: break, `r` (the overview reads again) and enter (the
    model screen opens); both say why; heal, `r` on the model screen; back to the overview."""
    app = pilot.app
    overview = app.screen
    assert isinstance(overview, OverviewScreen)
    rig.clock.advance(**STEP)
    rig.brk(kind, fault)
    probe = OwnLagProbe().start()
    screen = await open_under_fault(pilot, kind, fault, keys=("r", "enter"))
    if kind == "ci":  # the last good data is still shown (dimmed)
        assert screen.query_one("#ci").detail.ci, f"{fault}: the stale runs are gone"
    elif kind == "registry":
        assert screen.table.row_count > 0, f"{fault}: the versions are gone"
    else:
        assert panel_has_data(screen, PANEL_OF[kind]), f"{fault}: the stale data is gone"
    # The overview below read under the same fault meanwhile.
    await until(pilot, lambda: row_problem(overview, kind), f"the overview row under {fault}")
    assert_words(row_problem(overview, kind))
    assert OLD.search(row_problem(overview, kind)), row_problem(overview, kind)

    await rig.heal(kind)
    await recover(pilot, rig, screen, kind)
    await pilot.press("escape")
    assert app.screen is overview
    lag = await probe.stop()
    assert lag < LAG_LIMIT, f"{fault}: the event loop stalled {lag:.2f}s"
    assert app.is_running


# -- the matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SHARE))
async def test_http_backend_faults_in_the_tui(rig: Rig, name: str) -> None:
    kind = BY_NAME[name].kind
    rig.http(kind, name)
    app = rig.app()
    async with app.run_test(size=SIZE) as pilot:
        await good_start(pilot)
        for fault in FAULTS if LONG else SHARE[name]:
            await fault_round(pilot, rig, kind, fault)
        await overview_recovers(pilot, kind)
        assert app.is_running and app.return_code is None


FILE_FAULTS: list[tuple[str, str | BaseException]] = [
    ("code", "hang"),
    ("data", InvalidResponse("models/m/metrics.json at abc123: not JSON", backend="dvc")),
    ("audit", AuditUnavailable(".cd4ml/audit.sqlite is locked by another process",
                               backend="sqlite-audit", hint="wait, or stop the other process")),
]  # fmt: skip


async def test_code_data_and_audit_faults_in_the_tui(rig: Rig) -> None:
    """Kinds only the model screen shows (lineage, audit trail)."""
    app = rig.app()
    async with app.run_test(size=SIZE) as pilot:
        await good_start(pilot)
        overview = app.screen
        for kind, fault in FILE_FAULTS:
            label = fault if isinstance(fault, str) else type(fault).__name__
            rig.clock.advance(**STEP)
            rig.brk(kind, fault)
            probe = OwnLagProbe().start()
            screen = await open_under_fault(pilot, kind, label)
            if isinstance(fault, BaseException):
                said = " ".join(problems(screen, kind))
                assert str(fault).split(":")[0] in said, said
            assert panel_has_data(screen, PANEL_OF[kind])
            await rig.heal(kind)
            await recover(pilot, rig, screen, kind)
            await pilot.press("escape")
            assert app.screen is overview
            assert await probe.stop() < LAG_LIMIT


# -- all down, flapping, one slow -----------------------------------------------------------------

ALL_DOWN: dict[str, str | BaseException] = {
    "registry": Unreachable(
        "gto: git for-each-ref failed in /srv/ws: not a git repository",
        backend="gto",
        hint="check workspace.path",
    ),
    "ci": "blackhole",
    "metrics": "malformed",
    "code": Unreachable("git: cannot run git: No such file or directory", backend="git"),
    "data": "hang",
    "audit": AuditUnavailable(".cd4ml/audit.sqlite: file is not a database", backend="sqlite"),
}


def _break_all(rig: Rig) -> None:
    for kind, fault in ALL_DOWN.items():
        rig.brk(kind, fault)


async def _heal_all(rig: Rig) -> None:
    for kind in ALL_DOWN:
        await rig.heal(kind)


async def test_all_down_from_the_start_and_after_good_data(rig: Rig) -> None:
    rig.ws.backends["registry"] = Breakable(rig.ws.backends["registry"])  # GTO: commits
    rig.http("ci", "github-actions")
    rig.http("metrics", "prometheus")
    _break_all(rig)
    app = rig.app(model="m")
    async with app.run_test(size=SIZE) as pilot:
        probe = OwnLagProbe().start()
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        # Nothing was ever read: the screen says so in words, no data is made up.
        assert screen.table.row_count == 0
        assert_words(screen.table.empty_text, "no versions", "not a git repository")
        for kind in ("registry", "audit"):
            assert problems(screen, kind), kind
            for line in problems(screen, kind):
                assert_words(line, "no data yet")
        for selector in PANELS:
            assert not JUNK.search(shown(screen.query_one(selector))), selector
        for key, kind in (("ctrl+p", CommandPalette), ("colon", GotoScreen)):
            await pilot.press(key)
            assert isinstance(app.screen, kind)
            await pilot.press("escape")
            assert app.screen is screen
        await pilot.press("escape")
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        detail = warning(shown(overview.query_one("#detail")), "registry")
        assert_words(detail, "no data yet", "not a git repository")

        await _heal_all(rig)
        await pilot.press("r")
        await until(pilot, lambda: overview.table.keys == ["m"], "the models after healing")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        await recover(pilot, rig, screen, *ALL_DOWN)

        rig.clock.advance(**STEP)
        _break_all(rig)
        await pilot.press("r")
        await until(pilot, lambda: all(problems(screen, k) for k in ALL_DOWN), "every problem")
        await settle(pilot)
        for kind in ALL_DOWN:
            for line in problems(screen, kind):
                assert_words(line, AGE)
        assert screen.table.row_count == 4  # the last good versions, with their age
        for selector in PANELS:
            assert panel_has_data(screen, selector), selector
        await keys_answer(pilot, screen)
        await pilot.press("escape", "r")
        await until(pilot, lambda: row_problem(overview, "registry"), "the overview")
        await settle(pilot)
        for kind in ("registry", "ci", "metrics"):  # what a row of the overview is made of
            assert_words(row_problem(overview, kind))
            assert OLD.search(row_problem(overview, kind)), row_problem(overview, kind)
        assert overview.table.keys == ["m"]  # the last good list of models

        await _heal_all(rig)
        await pilot.press("r")
        await until(pilot, lambda: not row_problem(overview, "registry"), "the overview back")
        await settle(pilot)
        assert overview.rows["m"].problems == ()
        await pilot.press("enter")
        await settle(pilot)
        await recover(pilot, rig, app.screen, *ALL_DOWN)
        assert await probe.stop() < LAG_LIMIT
        assert app.is_running


async def test_registry_down_from_the_start_every_panel_says_why(rig: Rig) -> None:
    """No version could be read, so no version is selected: the version panels say so (not
    "loading…" for ever), and Live does not claim nothing serves (nobody knows)."""
    rig.http("registry", "mlflow")
    rig.brk("registry", "http_503")
    app = rig.app(model="m")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen) and screen.table.row_count == 0
        for selector in ("#lineage", "#ci"):
            assert "loading" not in shown(screen.query_one(selector)), selector
        assert "nothing in production" not in shown(screen.query_one("#live"))


async def test_mlflow_huge_model_list_is_an_error_not_an_empty_list(rig: Rig) -> None:
    """Found by the CD4ML_LONG matrix: under a 50 MB body the overview shows no models and
    no warning, instead of the last good list and what is wrong."""
    rig.http("registry", "mlflow")
    app = rig.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        overview = app.screen
        assert isinstance(overview, OverviewScreen) and overview.table.keys == ["m"]
        rig.brk("registry", "huge")
        await pilot.press("r")
        await settle(pilot)
        assert overview.table.keys == ["m"]
        assert_words(row_problem(overview, "registry"))


async def test_flapping_peer_is_shown_as_it_is_at_each_read(rig: Rig) -> None:
    rig.http("ci", "github-actions")
    cell = rig.server.cells[rig.cells["ci"][1]]
    app = rig.app(model="m")
    async with app.run_test(size=SIZE) as pilot:
        probe = OwnLagProbe().start()
        await settle(pilot)
        screen = app.screen
        for n, mode in enumerate(("malformed", "good", "http_403", "good")):
            rig.clock.advance(minutes=1)
            cell.mode = mode
            await pilot.press("r")
            if mode == "good":
                await until(pilot, lambda: fresh(screen, "ci", rig.clock()), f"flip {n}")
            else:
                await until(pilot, lambda: problems(screen, "ci"), f"flip {n}")
                for line in problems(screen, "ci"):
                    assert_words(line, "showing data from 1m ago")  # the last good read
            await settle(pilot)
            assert_others_fine(screen, {"ci"} if mode != "good" else set())
        # A burst: the peer flips between presses faster than anyone reads; the last word wins.
        for mode in ("http_404", "good", "malformed", "good"):
            cell.mode = mode
            await pilot.press("r")
        await settle(pilot)
        await pilot.press("r")  # once more, after the peer settled
        await until(pilot, lambda: fresh(screen, "ci", rig.clock()), "the settled peer")
        assert await probe.stop() < LAG_LIMIT
        assert app.is_running


async def test_one_slow_peer_delays_only_its_panel(rig: Rig) -> None:
    """The metrics peer holds every answer until the test lets go (the timeout is long, so
    the order is decided by the test, not by the clock)."""
    gate = threading.Event()
    rig.http("metrics", "prometheus", timeout=30)
    rig.ws.config = rig.ws.config.model_copy(update={"timeout_seconds": 30})
    route = rig.cells["metrics"][1]
    peer = BY_NAME["prometheus"].peer()

    def slow(hit: Hit) -> Reply:
        gate.wait(20)
        return peer(hit)

    app = rig.app(model="m")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            rig.server.cells[route].handler = slow
            rig.clock.advance(**STEP)
            probe = OwnLagProbe().start()
            await pilot.press("r")
            others = ("registry", "ci", "code", "data", "audit")
            await until(pilot, lambda: all(fresh(screen, k, rig.clock()) for k in others),
                        "every other panel")  # fmt: skip
            assert not fresh(screen, "metrics", rig.clock())  # still waiting, not failed
            assert problems(screen, "metrics") == []
            await keys_answer(pilot, screen)
            await pilot.press("down")  # another version: its CI and lineage follow at once
            await until(pilot, lambda: screen.query_one("#ci").detail.version == "v1.2.0",
                        "the CI of the next version")  # fmt: skip
            assert not fresh(screen, "metrics", rig.clock())
            gate.set()
            await until(pilot, lambda: fresh(screen, "metrics", rig.clock()), "the slow panel")
            assert await probe.stop() < LAG_LIMIT
    finally:
        gate.set()


# Where a test asserts an order ("the rows came before CI's timeout"), the timeout is long enough
# that the order never depends on how fast this VM is at the moment.
ORDERED = 3.0


def rows_loaded(screen: ModelScreen) -> bool:
    """Every version row on screen has its details (metrics, data: not CI)."""
    keys = list(screen.table.visible_keys())
    return bool(keys) and all(k in screen.details for k in keys)


async def test_one_hanging_kind_on_a_tall_screen_delays_nothing_else() -> None:
    """A 90-row terminal shows ~80 versions; CI hangs for all of them. Their metrics (data)
    still arrive at once, while the CI column still waits, and the CI panel says why within
    timeout + 1 s (one bound per backend kind, and the wait for it counts against the
    timeout)."""
    from .tui_keys import CHURN, fakes, make_app

    world = fakes.FakeWorld(versions=100)
    gate = world.faults.gates["ci"] = asyncio.Event()  # CI never answers
    app = make_app(world, model=CHURN)
    app.config = app.config.model_copy(update={"timeout_seconds": ORDERED})
    app.workspace.config = app.config
    async with app.run_test(size=(160, 90)) as pilot:
        old = app.screen_stack[0]
        watch = Watch(lambda: problems(app.screen, "ci"), start=lambda: mounted_model(app, old))
        await until(pilot, lambda: rows_loaded(app.screen), "the metrics of every row", 15)
        # The order, not a clock, says the metrics did not wait for CI.
        assert watch.seen is None and not problems(app.screen, "ci"), "metrics waited for CI"
        screen = app.screen
        keys = list(screen.table.visible_keys())
        assert len(keys) > 70
        assert all(screen.details[k].metrics for k in keys)
        assert all(screen.details[k].ci_state == "pending" for k in keys)
        await until(pilot, lambda: watch.seen is not None or watch.over(ORDERED + 1),
                    "the CI problem, or the end of its time", 15)  # fmt: skip
        said = watch.stop()
        gate.set()
        assert said is not None and said <= ORDERED + 1, f"the CI problem came after {said}s"
        # Runs never read are unknown ("?"), not "no runs" (a dash), in the column and the panel.
        assert {fmt.ci_state(screen.details[k]) for k in keys} == {"unknown"}
        assert "CI runs unknown" in shown(screen.query_one("#ci"))


async def test_a_hanging_ci_holds_back_no_overview_row() -> None:
    """The overview reads a model's row, then its newest candidate's CI: with CI hanging the
    versions, stages and live figures are there while the CI column still says "…"; at the
    timeout it says "?" with the CI problem, and `r` after CI is back shows the runs."""
    from .tui_keys import fakes, make_app

    world = fakes.FakeWorld()
    gate = world.faults.gates["ci"] = asyncio.Event()  # CI never answers
    app = make_app(world)
    app.config = app.config.model_copy(update={"timeout_seconds": ORDERED})
    app.workspace.config = app.config
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        waiting = list(world.models)  # every fake model has versions after production

        def rows() -> list[Any]:
            return [screen.rows.get(name) for name in waiting]

        await until(pilot, lambda: all(r is not None and r.loaded for r in rows()), "the rows", 15)
        # The order, not a clock, says the rows did not wait for CI.
        assert all(r.ci == "pending" and r.waiting and r.staging for r in rows()), rows()
        assert not any(p.kind == "ci" for r in rows() for p in r.problems)
        await until(pilot, lambda: all(r.ci == "unknown" for r in rows()), "CI unknown", 15)
        assert all(any(p.kind == "ci" for p in r.problems) for r in rows())
        gate.set()
        await pilot.press("r")
        await until(pilot, lambda: all(r.ci in ("success", "failure", "running") for r in rows()),
                    "the CI runs after r", 15)  # fmt: skip
        assert not any(p.kind == "ci" for r in rows() for p in r.problems)


async def test_a_hanging_ci_holds_back_no_chunk_of_the_overview() -> None:
    """A workspace of 60 models fills its rows a chunk at a time; with CI hanging, every chunk
    comes before the first CI timeout (a chunk used to wait for the last one's CI runs)."""
    from .tui_keys import fakes, make_app

    world = fakes.FakeWorld(n_models=60)
    world.faults.gates["ci"] = asyncio.Event()  # CI never answers
    app = make_app(world)
    app.config = app.config.model_copy(update={"timeout_seconds": 60})
    app.workspace.config = app.config
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: len(screen.rows) == 60, "every row", 15)
        # The order, not a clock: no row has heard from CI yet, not even its timeout.
        assert {r.ci for r in screen.rows.values()} == {"pending"}
