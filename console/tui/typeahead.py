"""Keys typed ahead of a screen.

Over SSH keys arrive in bursts, and people type ahead: "R" then the reason at once, "/prod",
":fraud⏎". Textual runs a (non-priority) binding only after the key has bubbled up from
the focused widget through each parent's queue, and a pushed screen takes the focus only
once it is mounted; the keys behind went to the old focus meanwhile ("R" + "p95 up"
opened Promote's stage picker over the rollback dialog). Here a key's binding runs as the
app reads the key, and keys wait while a new screen is not mounted or a release action
has not opened its dialog yet (at most HOLD_LIMIT), in the order typed. Keys for a text
field go to it as before, and a key no binding takes goes on to the focused widget as
Textual sends it.
"""

from __future__ import annotations

import time
from typing import Any

from textual import events
from textual.app import App
from textual.screen import Screen
from textual.widgets import Input

# Sent on to a text field, which does not take them, these bubbled up to the screen's focus
# binding after the keys typed behind them had gone into the field.
FOCUS_KEYS = frozenset({"tab", "shift+tab"})


class TypeAhead(App[int]):
    """The app's key routing (ConsoleApp derives from it)."""

    HOLD_LIMIT = 0.5

    def __init__(self) -> None:
        super().__init__()
        self._held: list[events.Key] = []  # keys typed ahead of a screen (see on_event)
        self._held_since = 0.0
        # The screen a release action opens a dialog over, while it reads (console.tui.actions).
        self.opening_from: Screen[Any] | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._held or not self._ready_for_keys():
                self._hold(event)
                return
            if await self._bound(event):
                return
        await super().on_event(event)

    def _ready_for_keys(self) -> bool:
        screen = self.screen
        if self.opening_from is not None:  # a release action is reading, then opens a dialog
            if screen is self.opening_from:
                return False
            self.opening_from = None
        # Once mounted, a new screen has asked for its focus (compose, or focus() in on_mount,
        # which queues it on the app before the screen counts as mounted): the held keys are
        # let go from the same queue, after it.
        return screen.is_mounted

    def _hold(self, event: events.Key) -> None:
        self._held.append(event)
        if len(self._held) == 1:
            self._held_since = time.monotonic()
            self._look_again()

    def _look_again(self) -> None:
        # A timer's callback runs in the timer's own task: the held keys are let go from the
        # app's queue instead, one message among the others, never beside a key being handled.
        self.set_timer(0.01, lambda: self.call_later(self._release_held))

    async def _release_held(self) -> None:
        while self._held:
            waited = time.monotonic() - self._held_since
            if not self._ready_for_keys() and waited < self.HOLD_LIMIT:
                self._look_again()
                return
            event = self._held.pop(0)
            self._held_since = time.monotonic()  # a held key may open a screen in turn
            if not await self._bound(event):
                await super().on_event(event)

    async def _bound(self, event: events.Key) -> bool:
        """Run ``event``'s binding now, unless a text field has the focus (but for a key that
        moves the focus); True if one ran."""
        if self.screen.maximized is not None:
            return False
        if isinstance(self.focused, Input) and event.key not in FOCUS_KEYS:
            return False  # every text field here is an Input
        self.app_focus = True
        return await self._check_bindings(event.key, priority=True) or await self._check_bindings(
            event.key
        )
