"""The terminal side of the TUI (fake backends: tests/tui/fakes.py): resize storms down to
40x12 and back, keys and escape sequences the console does not bind, and bad input in the
dialogs, the `:` prompt, the `/` filters and the palette.

Keys and resizes go the way a terminal sends them: bytes through Textual's own xterm parser,
then into the driver, in bursts with no frame in between; then each size is drawn in turn.
After each: the app runs, the same screen is up and draws at the new size, a known key still
works, and nothing was done (no audit record, no stage moved, no dialog confirmed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.widgets import Button, Input, Static

from console.services.release.text import MAX_TEXT
from console.tui.screens.approve import ApproveDialog
from console.tui.screens.audit import AuditScreen
from console.tui.screens.compare import CompareScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.model import WIDE, ModelScreen
from console.tui.screens.overview import OverviewScreen
from console.tui.screens.pick import PickScreen
from console.tui.screens.promote import PromoteDialog
from console.tui.screens.prompt import GotoScreen
from console.tui.screens.rollback import RollbackDialog

from .tui_keys import (
    CHURN,
    fakes,
    laid_out,
    make_app,
    odd_keys,
    paste,
    request_promotion,
    state,
    walk,
)
from .tui_rig import plain, settle, until

MODELS = ["churn-predictor", "fraud-detector", "price-ranker", "demand-forecast"]


@pytest.fixture
def world() -> Any:
    return fakes.FakeWorld()


# -- resize storms and unknown keys ---------------------------------------------------------------


async def test_storms_and_odd_keys_on_overview_model_help_and_palette(world: Any) -> None:
    """The overview; help, the palette and `:` over it; the model screen in both layouts."""
    app = make_app(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        await walk(pilot, overview, world, "churn-predictor")
        await pilot.press("down")  # keys still work
        assert overview.table.cursor_key == "fraud-detector"
        for key, kind, look in (("question_mark", HelpScreen, "Keys"),
                                ("ctrl+p", CommandPalette, "commands"),
                                ("colon", GotoScreen, ":")):  # fmt: skip
            await pilot.press(key)
            screen = app.screen
            assert isinstance(screen, kind)
            await walk(pilot, screen, world, look)
            await pilot.press("escape")
            assert app.screen is overview
        await pilot.press("up", "enter")
        await settle(pilot)
        model = app.screen
        assert isinstance(model, ModelScreen)
        await walk(pilot, model, world, "v1.14.0")
        await pilot.resize_terminal(*WIDE)  # both layouts get the odd keys
        await until(pilot, lambda: laid_out(model, *WIDE), "the wide layout")
        await odd_keys(pilot, model, world)
        await pilot.press("down")
        await settle(pilot)
        assert model.selected == "v1.13.0"
        assert model.query_one("#ci").detail.version == "v1.13.0"
        assert app.is_running and app.return_code is None


async def test_storms_and_odd_keys_on_every_release_screen(world: Any) -> None:
    """Each release screen over the overview (``release_action`` is what their keys call; the
    model screen below a dialog costs four times as much to draw at 200x60), then the
    rollback dialog over the model screen."""
    await request_promotion(world)
    app = make_app(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        overview = app.screen
        assert isinstance(overview, OverviewScreen) and overview.table.cursor_key == CHURN
        for action, kind, look in (("approve", ApproveDialog, "Approve"),
                                   ("rollback", RollbackDialog, "Roll"),
                                   ("compare", CompareScreen, "production"),
                                   ("audit", AuditScreen, "audit"),
                                   ("promote", PickScreen, "stage")):  # fmt: skip
            app.release_action(action)
            await until(pilot, lambda kind=kind: isinstance(app.screen, kind), kind.__name__)
            screen = app.screen
            await settle(pilot)
            await walk(pilot, screen, world, look)
            if kind is PickScreen:  # the stage is picked: the promote dialog comes next
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, PromoteDialog), "promote")
                screen = app.screen
                await settle(pilot)
                await walk(pilot, screen, world, "Promote")
            await pilot.press("escape")
            if isinstance(app.screen, AuditScreen | CompareScreen) and app.screen is screen:
                await pilot.press("escape")  # the first escape cleared a filter
            await until(pilot, lambda: app.screen is overview, f"back from {kind.__name__}")
        await pilot.press("enter")
        await settle(pilot)
        model = app.screen
        assert isinstance(model, ModelScreen)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RollbackDialog), "the rollback")
        await settle(pilot)
        await walk(pilot, app.screen, world, "Roll")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is model, "back from the rollback")
        await pilot.press("down")
        await settle(pilot)
        assert model.selected == "v1.13.0"
        assert app.is_running


# -- bad input in the dialogs ---------------------------------------------------------------------


def hint(dialog: Any) -> str:
    return plain(dialog.query_one("#hint", Static).content)


async def fill(pilot: Any, dialog: Any, field: str, text: str) -> None:
    """Replace what ``field`` holds with ``text`` (pasted)."""
    box = dialog.query_one(f"#{field}", Input)
    box.focus()
    box.value = ""
    await pilot.pause()
    await paste(pilot, text)
    assert box.value == (text.splitlines()[0] if text else ""), (box.value[:40], text[:40])


BAD_REASONS = [
    ("", "a reason is required"),
    ("   ", "a reason is required"),
    ("x" * 10_000, f"keep it under {MAX_TEXT:,}"),
    ("canary ok\x07\x07", "control characters (\\x07)"),
    ("ok \x08\x08\x08\x08 fine\x7f", "control characters (\\x08, \\x7f)"),
    ("approved \u202egnp.exe", "control characters (\\u202e)"),
]
"""Pasted (a terminal sends no control character as a key press). An escape sequence in a
paste never reaches the dialog as such: Textual's parser turns the ESC into a visible ^."""


async def try_bad(pilot: Any, dialog: Any, world: Any, field: str, text: str, said: str) -> None:
    """``text`` in ``field``, then Enter and the confirm button: a message, nothing done."""
    before = state(world)
    await fill(pilot, dialog, field, text)
    assert said in hint(dialog), (text[:40], hint(dialog))
    confirm = dialog.query_one("#confirm", Button)
    assert confirm.disabled
    dialog.query_one(f"#{field}", Input).focus()
    await pilot.press("enter")
    dialog.start("confirm")  # what a click on the (disabled) button would reach at most
    await pilot.pause()
    assert not dialog.busy and not dialog.done and pilot.app.screen is dialog
    assert state(world) == before


async def open_dialog(pilot: Any, keys: tuple[str, ...], kind: type) -> Any:
    app = pilot.app
    await pilot.press(*keys)
    await until(pilot, lambda: isinstance(app.screen, kind), kind.__name__)
    dialog = app.screen
    await until(pilot, lambda: dialog.plan is not None or dialog.plan_error, "the plan")
    await settle(pilot)
    return dialog


async def test_bad_reasons_get_a_message_and_change_nothing(world: Any) -> None:
    await request_promotion(world)
    app = make_app(world, model=CHURN)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")  # v1.14.0 holds no stage: which one is asked
        await until(pilot, lambda: isinstance(app.screen, PickScreen), "the stage picker")
        await pilot.press("enter")  # staging
        await until(pilot, lambda: isinstance(app.screen, PromoteDialog), "promote")
        promote = app.screen
        await until(pilot, lambda: promote.plan is not None, "the plan")
        for text, said in BAD_REASONS:
            await try_bad(pilot, promote, world, "reason", text, said)
        await paste(pilot, "\x1b[2J\x1b]0;pwned\x07")
        assert "\x1b" not in promote.input_value("reason")
        await fill(pilot, promote, "reason", "weekly release")  # it still works afterwards
        await pilot.press("enter")
        await until(pilot, lambda: promote.done, "the promotion")
        assert world.models[CHURN].staging == 14
        assert [e.reason for e in world.audit_log if e.action == "request"][-1] == "weekly release"
        await pilot.press("escape")
        await settle(pilot)

        rollback = await open_dialog(pilot, ("R",), RollbackDialog)  # the same checks
        await fill(pilot, rollback, "confirm-name", CHURN)
        for text, said in BAD_REASONS[::2]:
            await try_bad(pilot, rollback, world, "reason", text, said)
        await fill(pilot, rollback, "reason", "p95 doubled")
        exactly = f"type the model name {CHURN} exactly"
        for typed in ("", "churn-predicto", "CHURN-PREDICTOR", f"{CHURN} ", "fraud-detector",
                      "churn\u2011predictor"):  # fmt: skip
            await try_bad(pilot, rollback, world, "confirm-name", typed, exactly)
        await pilot.press("escape")
        await settle(pilot)

        approve = await open_dialog(pilot, ("a",), ApproveDialog)
        for text, said in BAD_REASONS[2:4]:  # the comment is optional; the rest holds
            await try_bad(pilot, approve, world, "comment", text, said)
            before = state(world)
            approve.start("reject")  # x: the same text would be recorded
            await settle(pilot)
            assert state(world) == before and not approve.done
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen) and app.is_running


# -- the prompt, the filters, the palette -------------------------------------------------------

GOTO = ["nope", "churn-predictor v9.9.9", "v1.14.0", "[/]", "[bold]x", "(.*)", "\\", "🙂" * 3,
        "m" * 300]  # fmt: skip


def notes(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


async def test_goto_unknown_names_say_so_and_go_nowhere(world: Any) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        overview = app.screen
        before = state(world)
        for text in ("", "   "):
            await pilot.press("colon")
            await paste(pilot, text)
            await pilot.press("enter")
            assert app.screen is overview
        for text in [*GOTO, "churn\x1b[31m", "x\x00y"]:
            await pilot.press("colon")
            await paste(pilot, text)
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is overview and app.is_running, text
            assert any("No model named" in n for n in notes(app)[-1:]), (text, notes(app)[-1:])
        assert len(app.screen_stack) == 1 and state(world) == before


async def test_filters_take_any_characters(world: Any) -> None:
    await request_promotion(world)
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        overview = app.screen
        odd = "([.*\\+?^$|{"
        await pilot.press("slash", *odd)
        assert overview.table.keys == [] and overview.table.empty_text.startswith("no model")
        await pilot.press("escape")
        assert overview.table.keys == MODELS
        await pilot.press("slash")
        await paste(pilot, "churn\x1b[31m\u202e")
        assert overview.table.keys == []
        await pilot.press("escape", "enter")
        await settle(pilot)
        model = app.screen
        assert isinstance(model, ModelScreen)
        await pilot.press("slash")
        await paste(pilot, odd)
        assert model.filter_text == odd
        assert model.table.keys == [] and "no version matches" in model.table.empty_text
        await pilot.press("escape")  # clears the filter (a second escape would go back)
        assert len(model.table.keys) == 15
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit log")
        audit = app.screen
        await until(pilot, lambda: audit.table.row_count > 0, "the events")
        await pilot.press("slash")
        await paste(pilot, f"{odd} model: actor:([")
        assert audit.table.keys == [] and "no event matches" in audit.table.empty_text
        await pilot.press("escape")
        assert audit.table.row_count == len(world.audit_log)
        assert app.is_running


async def test_palette_takes_odd_queries(world: Any) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        overview = app.screen
        before, theme = state(world), app.theme
        for query in ("((( [ \\ .* ?", "🙂日本", "\u202e", "x" * 300):
            await pilot.press("ctrl+p")
            palette = app.screen
            assert isinstance(palette, CommandPalette)
            await paste(pilot, query)
            await settle(pilot)  # the palette searches in workers of its own
            await pilot.press("enter")  # nothing matches (or nothing is highlighted)
            await settle(pilot)
            if app.screen is palette:
                await pilot.press("escape")
            assert app.screen is overview and app.is_running, query
        assert state(world) == before and app.theme == theme


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NO_COLOR", "CD4ML_NOW", "CD4ML_THEME", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)
    yield
