"""The base of the release dialogs: the plan first, then the inputs it needs, then confirm.

The plan is read in a worker when the dialog opens (and again after a refusal, so the person
sees what changed); confirming runs the action in a worker and shows its outcome in words.
Keyboard only: Tab/Shift+Tab move between the plan, the inputs and the buttons; Enter in an
input confirms once everything needed is there (until then the hint says what is missing);
PageUp/PageDown scroll the plan from anywhere; Esc closes (not while the action runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static
from textual.widgets.button import ButtonVariant

from console.tui.palette import Palette, palette_of
from console.tui.planview import error_text, result_text
from console.tui.screens.base import ConsoleModal
from console.tui.widgets.bars import tolerate_teardown
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.marked import MarkedButton

if TYPE_CHECKING:
    from console.services.release import ActionResult, Plan, ReleaseService

log = logging.getLogger(__name__)


def button(label: str, *, id: str, variant: ButtonVariant = "default") -> MarkedButton:
    """An action button of a dialog (it marks its focus in a glyph, see widgets.marked)."""
    return MarkedButton(label, id=id, variant=variant, compact=True, classes="act")


def field(label: str, widget: Widget, *, id: str, hidden: bool = False) -> Horizontal:
    """A one-line labelled input row."""
    return Horizontal(Label(label), widget, classes="field -hidden" if hidden else "field", id=id)


class ActionDialog(ConsoleModal[bool]):
    """A release action as a dialog; dismisses with True when something was written."""

    CSS_PATH = "dialog.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("pageup", "scroll_plan(-1)", "Scroll plan up", show=False, priority=True),
        Binding("pagedown", "scroll_plan(1)", "Scroll plan", key_display="pgdn", priority=True),
    ]
    help_title = "release dialog"
    primary = "confirm"  # the id of the button Enter presses

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.plan: Plan | None = None
        self.plan_error = ""
        self.changed = False
        self.busy = False
        self.done = False
        self.result: ActionResult | None = None  # once the action ran

    # -- what subclasses provide -------------------------------------------------------------

    def dialog_title(self) -> str:
        raise NotImplementedError

    def form(self) -> Iterable[Widget]:
        """The inputs below the plan."""
        return ()

    def buttons(self) -> Iterable[Button]:
        return (button("Confirm", id="confirm", variant="primary"),)

    def enter_words(self, button: str) -> str:
        """What ``button`` does, in words, for the line above the buttons ("Enter: …"); the
        dialogs name the move ("approve v2.0.0 → production")."""
        return str(self.query_one(f"#{button}", Button).label).lower()

    async def fetch_plan(self) -> Plan:
        raise NotImplementedError

    def render_plan(self, plan: Plan) -> RenderableType:
        raise NotImplementedError

    def why_blocked(self, button: str) -> str:
        """'' when ``button`` may run now; else what is missing, in words."""
        return ""

    async def execute(self, button: str) -> ActionResult:
        raise NotImplementedError

    def after_plan(self, plan: Plan) -> None:
        """Adjust the form to a fresh plan (labels, checkboxes)."""

    def after_result(self, result: ActionResult) -> Text:
        """More to say under an action's outcome: a request waiting says who may approve it
        (and, in a demo workspace, that a demo colleague can)."""
        plan = self.plan
        if result.status not in ("requested", "pending") or plan is None:
            return Text()
        from console.tui.planview import who_may_approve

        app = self.console_app
        mine = plan.model_copy(update={"requested_by": plan.requested_by or plan.actor})
        text = Text(
            f"\nwho may approve: {who_may_approve(mine, app.loaded_config)}",
            style=self.palette.muted,
        )
        if app.demo_workspace:
            text.append(
                f"\ndemo: select {plan.version} and press a: a demo colleague can approve it",
                style=self.palette.accent,
            )
        return text

    def relabel(self, button_id: str, label: str) -> None:
        """Change a button's words (and its width with them)."""
        button = self.query_one(f"#{button_id}", Button)
        if str(button.label) != label:
            button.label = label
            button.refresh(layout=True)

    # -- layout ------------------------------------------------------------------------------

    @property
    def palette(self) -> Palette:
        return palette_of(self.app)

    @property
    def release(self) -> ReleaseService:
        return self.console_app.release

    @property
    def confirmed_plan(self) -> Plan:
        """The plan an action runs on: ``execute`` runs only once it is there."""
        assert self.plan is not None, "the action ran without a plan"
        return self.plan

    @property
    def prod_stage(self) -> str:
        return str(self.console_app.loaded_config.prod_stage)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            with VerticalScroll(id="body"):
                yield Static("", id="outcome")
                yield Static(Text("reading the plan…", style="italic"), id="plan")
            with Vertical(id="form"):
                yield from self.form()
                yield Static("", id="hint")
                with Horizontal(id="buttons"):
                    yield from self.buttons()
                    yield MarkedButton("Cancel", id="cancel", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        box = self.query_one("#dialog")
        box.border_title = Text(self.dialog_title())  # names from backends: never markup
        box.border_subtitle = "tab moves · esc closes"
        # The toast of the last action has been said in full; over this dialog it would
        # cover the buttons (they sit where toasts appear, bottom right).
        self.app.clear_notifications()
        self.update_state()
        first = next(iter(self.query(Input)), None)
        (first or self.query_one("#body")).focus()
        self.load_plan()

    # -- the plan ----------------------------------------------------------------------------

    @work(group="plan", exclusive=True)
    @tolerate_teardown
    async def load_plan(self) -> None:
        await self.console_app.ready.wait()
        try:
            plan = await self.fetch_plan()
        except Exception as exc:  # a refusal or a backend failure: said in words, never a crash
            if not _expected(exc):
                log.exception("reading the plan failed")
            self.plan, self.plan_error = None, _message(exc)
            self.query_one("#plan", Static).update(error_text(exc, self.palette))
            self.update_state()
            return
        self.plan, self.plan_error = plan, ""
        self.after_plan(plan)
        self.query_one("#dialog").border_title = Text(self.dialog_title())
        self.query_one("#plan", Static).update(self.render_plan(plan))
        self.update_state()

    def no_plan(self) -> str:
        """Why nothing can run before the plan is there."""
        if self.plan_error:
            return f"nothing to confirm: {self.plan_error}"
        return "reading the plan…"

    # -- state -------------------------------------------------------------------------------

    def update_state(self) -> None:
        """Enable each action button only when it may run; say why the main one may not."""
        for button in self.query(".act").results(Button):
            why = self._why(button.id or "")
            button.disabled = bool(why)
            button.display = not self.done
        cancel = self.query_one("#cancel", Button)
        cancel.label = "Close" if self.done else "Cancel"
        self.query_one("#hint", Static).update(self.hint())

    def hint(self) -> Text:
        """The line above the buttons: what Enter does now, or what is missing first."""
        pal = self.palette
        focused = self.focused
        if self.done:
            return Text("done · Enter or Esc closes", style=pal.muted)
        if isinstance(focused, Button) and focused.id and not focused.disabled:
            return Text(f"Enter: {self.enter_words(focused.id)}", style=pal.ok)
        why = self._why(self.primary)
        if why:
            return Text(why, style=pal.warn)
        return Text(f"ready · Enter: {self.enter_words(self.primary)}", style=pal.ok)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if self.is_mounted:
            self.update_state()  # Enter's words follow the focus

    def _why(self, button: str) -> str:
        if self.busy:
            return "working…"
        if self.done:
            return "done"
        return self.why_blocked(button)

    def input_value(self, id: str) -> str:
        return self.query_one(f"#{id}", Input).value

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        self.update_state()

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.done:
            self.action_close()
        elif self._why(self.primary):  # the hint below says what is missing; tab moves on
            self.app.bell()
            self.update_state()
        else:
            self.start(self.primary)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.action_close()
        elif event.button.id:
            self.start(event.button.id)

    # -- running the action ------------------------------------------------------------------

    def start(self, button: str) -> None:
        why = self._why(button)
        if why:
            self.notify(why, severity="warning")
            return
        self.busy = True
        self.update_state()
        self.show_outcome(Text("working…", style="italic"))
        self.run_worker(self._run(button), group="execute", exclusive=True)

    @tolerate_teardown
    async def _run(self, button: str) -> None:
        try:
            result = await self.execute(button)
        except Exception as exc:
            if not _expected(exc):
                log.exception("the release action failed")
            self.busy = False
            self.show_outcome(error_text(exc, self.palette))
            self.app.bell()
            self.changed = self.changed or not _refused(exc)
            self.load_plan()  # show what the refusal was about, as it is now
            self.update_state()
            return
        self.busy, self.done, self.changed, self.result = False, True, True, result
        outcome = result_text(result, self.palette)
        outcome.append_text(self.after_result(result))
        outcome.append("\n(below: the plan as it was confirmed)", style=self.palette.muted)
        self.show_outcome(outcome)
        self.update_state()
        self.query_one("#cancel", Button).focus()

    def show_outcome(self, text: RenderableType) -> None:
        outcome = self.query_one("#outcome", Static)
        outcome.update(text)
        outcome.add_class("-shown")
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    # -- keys --------------------------------------------------------------------------------

    def action_close(self) -> None:
        if self.busy:
            self.notify("The action is running: its outcome follows in a moment", timeout=3)
            return
        self.dismiss(self.changed)

    def action_scroll_plan(self, pages: int) -> None:
        body = self.query_one("#body", VerticalScroll)
        if pages < 0:
            body.scroll_page_up(animate=False)
        else:
            body.scroll_page_down(animate=False)


def _expected(exc: BaseException) -> bool:
    from console.services.release import Refused, ReleaseError

    return isinstance(exc, Refused | ReleaseError)


def _refused(exc: BaseException) -> bool:
    from console.services.release import Refused

    return isinstance(exc, Refused)


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc or type(exc).__name__)
