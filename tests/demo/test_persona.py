"""Demo colleagues (issue 19): in the solo demo, a story release manager approves a request
you made, recorded as a demo persona; anywhere else no persona can act at all."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.config import read_config_file
from console.config.demo_marker import is_demo_workspace
from console.demo.build import MARKER, DemoError, DemoInfo, build_demo, git_env
from console.demo.persona import colleague_for, colleague_service, persona_identity
from console.domain import Actor
from console.services.release import ReleaseError, ReleaseService
from console.services.release.journal import Journal
from console.services.workspace import open_workspace

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
MODEL, VERSION, STAGE = "price-recommender", "v1.3.0", "production"


@pytest.fixture
def demo(tmp_path: Path) -> DemoInfo:
    return build_demo(tmp_path / "demo", seed=7, now=NOW)


def offline(path: Path) -> object:
    """The workspace's config without the metrics server (nothing serves in these tests)."""
    config = read_config_file(path)
    return config.model_copy(
        update={"backends": {k: v for k, v in config.backends.items() if k != "metrics"}}
    )


def me(ws: object) -> ReleaseService:
    return ReleaseService(
        ws,  # type: ignore[arg-type]
        identity=lambda: Actor(user="visitor", ssh_client="192.0.2.9"),
        clock=lambda: LATER,
    )


async def test_a_demo_colleague_approves_the_request_you_made(demo: DemoInfo) -> None:
    async with open_workspace(offline(demo.config_path)) as ws:  # type: ignore[arg-type]
        mine = me(ws)
        asked = await mine.promote(  # v1.3.0 was rolled back for INC-2041: acknowledged
            MODEL, VERSION, STAGE, reason="retry after the fix", ack_rolled_back=True
        )
        assert asked.status == "requested"
        plan = await mine.plan_approval(MODEL, VERSION, STAGE)
        assert "four-eyes" in plan.may_approve  # alone, you can not finish it
        handle, colleague = await colleague_for(mine, MODEL, VERSION, STAGE)
        assert handle == "dev"
        done = await colleague.approve(
            MODEL, VERSION, STAGE, comment="", evidence_hash=plan.evidence_hash
        )
        assert done.status == "executed", done.message
        events = list(await ws.backends["audit"].events(model=MODEL))
    approval = next(e for e in reversed(events) if e.action == "approve")
    assert approval.actor == "dev"
    assert approval.details["identity"] == {
        "user": "dev", "ssh_client": "192.0.2.9", "demo_persona_of": "visitor",
    }  # fmt: skip
    outcome = events[-1]
    assert (outcome.action, outcome.result) == ("outcome", "executed")
    assert outcome.details["identity"]["demo_persona_of"] == "visitor"


def _real_repo(path: Path) -> Path:
    path.mkdir()
    env = git_env()
    for args in (["init", "-q", "-b", "main"],
                 ["-c", "user.name=R", "-c", "user.email=r@example.com", "commit", "-q",
                  "--allow-empty", "-m", "real work"]):  # fmt: skip
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env)
    return path


def test_a_copied_marker_does_not_make_a_demo(demo: DemoInfo, tmp_path: Path) -> None:
    assert is_demo_workspace(demo.path)
    real = _real_repo(tmp_path / "real")
    shutil.copy(demo.path / MARKER, real / MARKER)
    assert not is_demo_workspace(real)  # the marker names the demo's first commit, not this one
    assert not is_demo_workspace(tmp_path / "nothing-here")


async def test_no_persona_acts_outside_a_demo(demo: DemoInfo, tmp_path: Path) -> None:
    real = _real_repo(tmp_path / "real")
    shutil.copy(demo.path / MARKER, real / MARKER)
    shutil.copy(demo.config_path, real / demo.config_path.name)
    async with open_workspace(offline(real / demo.config_path.name)) as ws:  # type: ignore[arg-type]
        with pytest.raises(DemoError, match="not a demo workspace"):
            colleague_service(me(ws), "dev")
        store = ws.backends["audit"]
        persona = Actor(user="dev", demo_persona_of="visitor")
        journal = Journal(store, persona, lambda: LATER, 5.0, config=ws.config)
        with pytest.raises(ReleaseError, match="demo persona"):
            await journal.write("approve", model=MODEL, version=VERSION, stage=STAGE)
        assert list(await store.events()) == []  # nothing written in another person's name


def test_a_persona_stops_when_its_workspace_stops_being_a_demo(demo: DemoInfo) -> None:
    actor = persona_identity(demo.path, "erin", lambda: Actor(user="visitor"))
    assert actor().demo_persona_of == "visitor"
    (demo.path / MARKER).unlink()
    with pytest.raises(DemoError):
        actor()
    with pytest.raises(DemoError, match="not a demo colleague"):
        persona_identity(demo.path, "alice", lambda: Actor(user="visitor"))


async def test_the_approve_dialog_offers_the_demo_colleague(demo: DemoInfo) -> None:
    from textual.widgets import Button

    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.approve import ApproveDialog

    config = offline(demo.config_path)
    async with open_workspace(config) as ws:  # type: ignore[arg-type]
        mine = me(ws)
        await mine.promote(
            MODEL, VERSION, STAGE, reason="retry after the fix", ack_rolled_back=True
        )
        app = ConsoleApp(config, workspace=ws, release=mine, clock=lambda: LATER,  # type: ignore[arg-type]
                         refresh_seconds=0, launch=Launch(model=MODEL, version=VERSION))  # fmt: skip
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: app.demo_workspace and app.screen.selected == VERSION)
            await pilot.press("a")
            await _until(pilot, lambda: isinstance(app.screen, ApproveDialog))
            dialog = app.screen
            await _until(pilot, lambda: dialog.colleague is not None)
            button = dialog.query_one("#colleague", Button)
            assert button.display and str(button.label) == "Approve as dev (demo)"
            assert dialog.query_one("#confirm", Button).disabled  # not you: you asked for it
            button.focus()
            await pilot.press("enter")
            await _until(pilot, lambda: dialog.done)
        events = list(await ws.backends["audit"].events(model=MODEL))
    assert [(e.actor, e.action) for e in events[-3:]] == [
        ("dev", "approve"), ("dev", "intent"), ("dev", "outcome"),
    ]  # fmt: skip


async def _until(pilot: object, cond: object) -> None:
    for _ in range(200):
        if cond():  # type: ignore[operator]
            return
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    raise AssertionError("timed out")
