"""Start-up: the first frame comes before the config is validated and before any backend; it
shows the last session's model list; a bad config still exits 2 saying what to fix."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from console.config.locate import Located, _ui_part, peek_theme
from console.tui import opening, startcache
from console.tui.app import ConsoleApp
from console.tui.launch import Launch
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.startcache import Listed, read_listing, write_listing


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _deferred(world: Any, make_app: Any, gate: asyncio.Event | None = None, **kw: Any) -> Any:
    """An app built like ``run_tui`` builds it: the config is loaded by the app, in a worker
    (held back by ``gate``, so a test can look at the first instant)."""
    ready = make_app(**kw)
    config = ready.config

    def load() -> Any:
        if gate is not None:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(10)
        return config

    loop = asyncio.get_running_loop()
    launch = Launch(
        label="repo-dir", cache_key="/ws/one", theme=kw.get("theme"),
        peeked_theme=kw.get("peeked_theme"), model=kw.get("model"), version=kw.get("version"),
    )  # fmt: skip
    app = ConsoleApp(
        load_config=load, launch=launch, workspace=ready.workspace,
        release=ready.injected_release, clock=ready.clock, refresh_seconds=0,
    )  # fmt: skip
    return app


def _title(app: Any) -> str:
    return app.screen.query_one("#title").render_line(0).text


async def test_first_frame_shows_last_sessions_models_before_the_config(world, make_app, wait):
    write_listing("/ws/one", [Listed("fraud-detector", "card fraud"), Listed("old-model")])
    gate = asyncio.Event()
    app = _deferred(world, make_app, gate)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.config is None and app.services is None
        assert app.screen.table.keys == ["fraud-detector", "old-model"]
        assert "repo-dir" in _title(app) and "opening workspace" in _title(app)
        await pilot.press("down", "p", "question_mark", "escape")  # keys in the first instant
        assert app.is_running
        gate.set()
        await wait(pilot)
        names = app.screen.table.keys
        assert "old-model" not in names and "fraud-detector" in names  # the registry decides
        assert "acme-ml" in _title(app)
    listed, _ = read_listing("/ws/one")
    assert [m.name for m in listed] == names  # saved for the next start


async def test_garbage_collection_paused_for_the_start_resumes_after_the_first_frame(
    world, make_app
):
    app = _deferred(world, make_app)
    gc.disable()  # as `cd4ml-console` does before importing Textual
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert gc.isenabled()  # a long session must not grow without bound
            assert gc.get_freeze_count() > 0  # what the start built is not walked again
    finally:
        gc.unfreeze()
        gc.enable()


async def test_bad_config_found_after_the_first_frame_exits_2_with_the_reason(capsys):
    from console.config import ConfigError

    def load() -> Any:
        raise ConfigError("cd4ml-console.toml: ui.refresh_seconds: must be > 0 (got -1)")

    app = ConsoleApp(load_config=load, launch=Launch(label="repo"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
    assert app.return_code == 2
    assert "ui.refresh_seconds: must be > 0" in capsys.readouterr().err


async def test_an_unexpected_failure_reading_the_config_exits_1_without_a_traceback(capsys):
    def load() -> Any:
        raise RuntimeError("disk on fire")

    app = ConsoleApp(load_config=load, launch=Launch(label="repo"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
    assert app.return_code == 1
    err = capsys.readouterr().err
    assert "Could not read the config: disk on fire" in err and "Traceback" not in err


async def test_model_asked_for_opens_once_the_config_is_read(world, make_app, wait):
    app = _deferred(world, make_app, model="fraud-detector")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert app.screen.model_name == "fraud-detector"


async def test_open_takes_a_prefix_in_any_case_and_a_version_without_its_v(world, make_app, wait):
    app = _deferred(world, make_app, model="FRAUD", version="1.3.0")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen) and screen.model_name == "fraud-detector"
        assert screen.selected == "v1.3.0" and screen.table.cursor_key == "v1.3.0"
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)


async def test_open_an_unknown_model_goes_back_to_the_overview_saying_so(world, make_app, wait):
    app = _deferred(world, make_app, model="fraud-detecter")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        assert isinstance(app.screen, OverviewScreen) and len(app.screen_stack) == 1
        said = [n.message for n in app._notifications]
        assert "No model named 'fraud-detecter' — did you mean fraud-detector?" in said


async def test_open_an_unknown_version_says_so_and_shows_the_model(world, make_app, wait):
    app = _deferred(world, make_app, model="fraud-detector", version="v9.9.9")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen) and screen.selected is not None
        said = [n.message for n in app._notifications]
        assert "fraud-detector has no version v9.9.9" in said


async def test_validated_theme_replaces_the_quick_reading_unless_asked(world, make_app, wait):
    app = _deferred(world, make_app, peeked_theme="light")  # the config says dark
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        assert app.theme == "dark"
    app = _deferred(world, make_app, theme="high-contrast")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        assert app.theme == "high-contrast"


def test_start_cache_ignores_damaged_foreign_or_huge_files(tmp_path):
    write_listing("/ws/a", [Listed("m1", "d")])
    path = startcache.cache_file("/ws/a")
    assert read_listing("/ws/a") is not None
    assert read_listing("/ws/b") is None  # another workspace
    for junk in (b"{", b"[]", b'{"version": 1}', json.dumps({"version": 9}).encode()):
        path.write_bytes(junk)
        assert read_listing("/ws/a") is None
    path.write_bytes(b" " * (startcache.MAX_BYTES + 1))
    assert read_listing("/ws/a") is None
    doc = {"version": 1, "key": "/ws/b", "saved_at": 1, "models": [["x", ""]]}
    path.write_text(json.dumps(doc))
    assert read_listing("/ws/a") is None  # a hash collision never shows another's models


def test_start_cache_write_failure_is_silent(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # not a folder: mkdir fails
    write_listing("/ws/a", [Listed("m1")])
    assert read_listing("/ws/a") is None


def test_peek_theme_reads_only_the_ui_table(tmp_path):
    conf = tmp_path / "c.toml"
    models = "".join(
        f'[models.m{i}]\ndescription = "[ui] is not a header here"\n' for i in range(50)
    )
    conf.write_text(f'[workspace]\nname = "x"\n{models}[ui]\ntheme = "light"  # mine\n[policy]\n')
    assert peek_theme(Located(conf)) == "light"
    assert _ui_part('ui = { theme = "dark" }\n[a]\nb = 1\n') == 'ui = { theme = "dark" }'
    conf.write_text("[ui\ntheme=")
    assert peek_theme(Located(conf)) is None  # broken: validation says why, later


async def test_a_config_that_arrives_after_quitting_is_dropped(world, make_app):
    """``q`` typed in the first instant (the kept frame is up, the config still loading): when
    the loading thread comes back the app has closed its screens. The config is dropped; the
    app does not touch a screen that is gone (it used to crash: exit 1, "No screens on
    stack")."""
    ready = make_app()
    app = ConsoleApp(
        load_config=lambda: ready.config, launch=Launch(label="repo-dir", cache_key="/ws/one"),
        workspace=ready.workspace, release=ready.injected_release, clock=ready.clock,
        refresh_seconds=0,
    )  # fmt: skip
    assert not app.screen_stack  # as after quitting: no screens
    assert await opening.validate_config(app) is False
    assert app.config is None
