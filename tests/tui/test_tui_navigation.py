"""Pilot tests: moving around the console with the keyboard."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from textual import events
from textual.command import CommandPalette
from textual.widgets import Input

from console.tui.palette import palette_of
from console.tui.screens.help import HelpScreen, help_entries
from console.tui.screens.model import ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.screens.rollback import RollbackDialog
from console.tui.widgets.keybar import KeyBar

MODELS = ["churn-predictor", "fraud-detector", "price-ranker", "demand-forecast"]


def plain(renderable: Any, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


async def test_overview_lists_models_with_their_state(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        assert screen.table.keys == MODELS
        churn = screen.rows["churn-predictor"]
        assert churn.production == "v1.10.0"
        assert churn.staging == "v1.13.0"
        assert churn.waiting == 4
        assert churn.ci == "success"
        assert churn.p95 is not None and len(churn.trend) == 24
        assert screen.rows["fraud-detector"].ci == "failure"
        assert screen.rows["price-ranker"].ci == "running"
        forecast = screen.rows["demand-forecast"]
        assert forecast.production is None
        assert forecast.problems == ()  # nothing serves, so no live health is expected


async def test_enter_opens_model_and_escape_goes_back(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("down", "enter")
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        assert screen.model_name == "fraud-detector"
        assert screen.table.keys[0] == "v1.14.0"  # newest first
        assert screen.selected == "v1.14.0"
        lineage = screen.query_one("#lineage").lineage
        assert lineage.version == "v1.14.0" and lineage.base_version == "v1.9.0"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)
        assert app.screen.table.cursor_key == "fraud-detector"


async def test_slash_filters_and_escape_clears(make_app, wait):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        await pilot.press("slash", *"fraud")
        await pilot.pause()
        assert app.screen.table.keys == ["fraud-detector"]
        bar, keys = app.screen.query_one("#filter"), app.screen.query_one(KeyBar)
        assert bar.value == "fraud" and bar.region.height == 1  # what you type is on screen,
        assert bar.region.bottom <= keys.region.y  # not under the key bar
        await pilot.press("enter")  # keep the filter, back to the table
        await pilot.pause()
        assert app.screen.table.has_focus
        assert app.screen.table.keys == ["fraud-detector"]
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert app.screen.table.keys == MODELS


async def test_filter_on_model_screen_matches_authors_and_stages(make_app, wait):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        await pilot.press("slash", *"production")
        await pilot.pause()
        assert app.screen.table.keys == ["v1.10.0"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen.table.keys) == 15


def _typed_at_once(app: Any, text: str) -> None:
    """Queue ``text``'s keys before the app reads any: a fast typist over SSH, or a paste."""
    names = {"/": "slash", ":": "colon", "?": "question_mark", " ": "space", "\r": "enter"}
    for ch in text:
        app.post_message(events.Key(names.get(ch, ch), None if ch == "\r" else ch))


async def test_keys_typed_right_after_slash_or_colon_are_not_screen_keys(make_app, wait, world):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        model = app.screen
        _typed_at_once(app, "/prod")  # `p` is Promote and `r` Refresh on this screen
        await wait(pilot)
        assert app.screen is model and model.query_one("#filter").value == "prod"
        assert model.table.keys == ["v1.10.0"]
        _typed_at_once(app, "/")  # in the field, `/` is text
        await wait(pilot)
        assert model.query_one("#filter").value == "prod/"
        await pilot.press("escape")
        _typed_at_once(app, ":fra\r")  # `a` is Approve
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen) and app.screen.model_name == "fraud-detector"
        assert len(app.screen_stack) == 2


async def test_enter_typed_right_after_the_filters_enter_opens_the_model(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        _typed_at_once(app, "/chu\r\r")  # keep the filter, then open the one model left
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen), app.screen_stack
        assert app.screen.model_name == "churn-predictor"


async def test_keys_typed_right_after_an_action_key_go_to_its_dialog(make_app, wait, world):
    """The action reads before its dialog opens: the reason typed at once waits for it
    (`p` would have opened Promote's stage picker over the dialog)."""
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        _typed_at_once(app, "Rp95 up")
        await wait(pilot)
        assert isinstance(app.screen, RollbackDialog), app.screen_stack
        assert app.screen.query_one("#reason", Input).value == "p95 up"
        assert world.models["churn-predictor"].prod == 10  # nothing ran
        await pilot.press("escape")
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen)


async def test_keys_do_not_wait_on_a_screen_whose_focus_was_moved_away(make_app, wait):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        app.screen.set_focus(None)  # e.g. a click on no widget
        assert app._ready_for_keys()  # keys are not held for it
        _typed_at_once(app, "?")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_a_filter_matching_no_version_leaves_nothing_selected(make_app, wait):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert screen.selected == "v1.14.0"
        await pilot.press("slash", *"zzz", "enter")
        await wait(pilot)
        assert screen.table.keys == [] and screen.selected is None
        body = screen.query_one("#lineage")._renderable
        assert "no version matches the filter" in plain(body)
        await pilot.press("p")  # acts on no hidden version
        await wait(pilot)
        assert app.screen is screen
        assert "Promote: select a version first" in [n.message for n in app._notifications]
        await pilot.press("slash", "escape")
        await wait(pilot)
        assert screen.selected == "v1.14.0" and len(screen.table.keys) == 15


async def _help_text(app: Any) -> str:
    assert isinstance(app.screen, HelpScreen)
    return plain(app.screen._render_help())


async def test_help_lists_every_key_of_the_current_screen(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        await wait(pilot)
        for opener in ((), ("enter",)):
            await pilot.press(*opener)
            await wait(pilot)
            below = app.screen
            expected = {
                (b.binding.description, app.get_key_display(b.binding))
                for k, b in below.active_bindings.items()
                if b.binding.description and not b.binding.system and k == b.binding.key
            }
            entries = help_entries(app, below)
            await pilot.press("question_mark")
            await pilot.pause()
            text = await _help_text(app)
            for description, _key in expected:
                assert description in text, description
            keys_column = {e[0] for e in entries}
            for description, key in expected:
                assert any(key in keys for keys in keys_column), (description, key)
            if isinstance(below, ModelScreen):  # release actions are listed before they land
                for word in ("Compare", "Approve", "Promote", "Rollback", "Audit log"):
                    assert word in text
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is below


async def test_palette_finds_models_and_switches_theme(make_app, wait):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"open fraud")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert app.screen.model_name == "fraud-detector"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"theme: light")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "light"


async def test_palette_jumps_to_a_version(make_app, wait):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"churn-predictor v1.3.0")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait(pilot)
        assert app.screen.table.cursor_key == "v1.3.0"
        assert app.screen.query_one("#lineage").lineage.version == "v1.3.0"


async def test_colon_goes_to_a_model_by_name_or_unique_prefix(make_app, wait):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        await pilot.press("colon", *"price", "enter")
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert app.screen.model_name == "price-ranker"
        await pilot.press("colon", *"churn-predictor", "enter")
        await wait(pilot)
        assert app.screen.model_name == "churn-predictor"
        assert len(app.screen_stack) == 2  # replaced, not stacked
        await pilot.press("colon", *"nope", "enter")
        await pilot.pause()
        assert app.screen.model_name == "churn-predictor"
        assert any("No model named 'nope'" in n.message for n in app._notifications)


async def test_versions_table_keys_and_lazy_details(make_app, wait, world):
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        screen = app.screen
        loaded = set(screen.details)
        assert "v1.10.0" in loaded  # production, for the deltas
        assert "v1.0.0" not in loaded  # not on screen: not fetched
        await pilot.press("G")
        await wait(pilot)
        assert screen.table.cursor_key == "v1.0.0"
        assert "v1.0.0" in screen.details
        await pilot.press("g", "down", "space", "space")
        await pilot.pause()
        assert screen.action_context().selected == ("v1.13.0", "v1.12.0")
        await pilot.press("3")
        await pilot.pause()
        assert screen.query_one("#live").has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert screen.table.has_focus


async def test_release_keys_open_their_screens(make_app, wait):
    from console.tui.screens.compare import CompareScreen
    from console.tui.screens.pick import PickScreen
    from console.tui.screens.promote import PromoteDialog
    from console.tui.screens.rollback import RollbackDialog

    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        footer_keys = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"c", "a", "p", "R"} <= footer_keys
        await pilot.press("c")
        await wait(pilot)
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        await pilot.press("p")  # v1.14.0 holds no stage: which one is asked
        await wait(pilot)
        assert isinstance(app.screen, PickScreen)
        await pilot.press("enter")
        await wait(pilot)
        assert isinstance(app.screen, PromoteDialog) and app.screen.stage == "staging"
        await pilot.press("escape")
        await pilot.press("R")
        await wait(pilot)
        assert isinstance(app.screen, RollbackDialog)
        await pilot.press("escape")
        await pilot.press("a")
        await wait(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert any("has no request waiting for approval" in n.message for n in app._notifications)


async def test_read_only_hides_changing_actions_and_says_why(make_app, wait):
    app = make_app(model="churn-predictor", read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        keys = {b.binding.key for b in app.screen.active_bindings.values()}
        assert "c" in keys
        assert not {"a", "p", "R"} & keys
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)
        assert any(
            n.message == "Promote is not available: read-only session (--read-only)"
            for n in app._notifications
        )


async def test_theme_from_argument_config_and_fallback(make_app, wait):
    app = make_app(theme="colorblind")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        assert app.theme == "colorblind"
        assert app.switch_theme("high-contrast")
        assert app.theme == "high-contrast"
        assert not app.switch_theme("no-such-theme")
        assert app.theme == "high-contrast"
    app = make_app(theme="sepia-dreams")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot)
        assert app.theme == "dark"
        assert any("unknown theme 'sepia-dreams'" in n.message for n in app._notifications)


async def test_audit_key_and_theme_picker_from_the_overview(make_app, wait):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait(pilot)
        await pilot.press("A")
        await wait(pilot)
        from console.tui.screens.audit import AuditScreen

        assert isinstance(app.screen, AuditScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"high", "enter")
        await pilot.pause(0.3)
        assert app.theme == "high-contrast"


async def test_r_while_a_read_hangs_reads_again_and_the_late_answer_is_dropped(make_app, world):
    """A CI read hangs; `r` does not wait for it: the details are asked for again, and when
    the old read finally answers it changes nothing (the newer read decides)."""
    import asyncio

    gate = world.faults.gates["ci"] = asyncio.Event()
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if world.faults.calls["ci.runs_for"]:
                break
        screen = app.screen
        before = world.faults.calls["ci.runs_for"]
        assert before and screen._pending  # hanging
        await pilot.press("r")
        await pilot.pause(0.1)
        # asked again at once, not waited for (the new reads queue for the CI backend's slots)
        assert screen._pending and set(screen._pending.values()) == {screen._generation} == {1}
        gate.set()
        for _ in range(100):
            await pilot.pause(0.02)
            if not screen._pending:
                break
        assert not screen._pending and "v1.10.0" in screen.details
        assert world.faults.calls["ci.runs_for"] > before  # the new reads ran


async def test_deprecated_models_are_hidden_until_d_shows_them_marked(make_app, wait, world):
    world.models["price-ranker"].deprecated = True  # `gto deprecate price-ranker`
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        assert "price-ranker" not in screen.table.keys  # like `gto show`
        assert "3 models (+1 deprecated: d)" in screen.query_one("#title").render_line(0).text
        assert "d Deprecated" in screen.query_one(KeyBar).render_line(0).text
        assert any(e[:2] == ("d", "Deprecated") for e in help_entries(app, screen))
        await pilot.press("d")
        await wait(pilot)
        assert screen.table.keys == MODELS
        cells = screen._cells("price-ranker")
        assert cells["model"][0] == "price-ranker \u2020"
        assert cells["model"][1] == palette_of(app).muted  # dimmed, and marked for NO_COLOR
        assert cells["status"][0] == "deprecated"
        assert screen.rows["price-ranker"].deprecated
        await pilot.press("d")
        await wait(pilot)
        assert "price-ranker" not in screen.table.keys


async def test_a_registry_that_does_not_answer_is_said_instead_of_no_models(world, clock):
    """An MLflow server that is down: the body says the registry did not answer, and why."""
    import sys

    from console.ports import Unreachable
    from console.tui.app import ConsoleApp

    fakes = sys.modules["tui_fakes"]
    world.faults.fail(
        "registry", Unreachable("MLflow at http://mlflow.test: refused", backend="mlflow")
    )
    ws, _ = fakes.make_workspace(world)
    ws.config = ws.config.model_copy(update={"models": {}})  # nothing known but from it
    app = ConsoleApp(ws.config, workspace=ws, clock=clock, refresh_seconds=0)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if getattr(app.screen, "registry_section", None) is not None:
                break
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, OverviewScreen) and screen.table.keys == []
        body = screen.table.render_line(1).text
        assert "no models found" not in body
        assert "the registry did not answer: mlflow: MLflow at http://mlflow.test: refused" in body


async def test_a_tab_typed_ahead_in_a_dialog_moves_on_before_the_keys_behind_it(make_app, wait):
    """The reason, Tab and the model's name typed at once: the name goes after the reason's
    field, not into it (the Tab went to the reason and bubbled up after the name's keys)."""
    app = make_app(model="churn-predictor")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await pilot.press("R")
        await wait(pilot)
        assert isinstance(app.screen, RollbackDialog), app.screen_stack
        _typed_at_once(app, "p95 up")
        app.post_message(events.Key("tab", "\t"))
        _typed_at_once(app, "churn")
        await wait(pilot)
        assert app.screen.query_one("#reason", Input).value == "p95 up"
        assert app.focused is not None and app.focused.id != "reason", app.focused
