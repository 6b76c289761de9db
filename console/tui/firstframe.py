"""The Textual side of the last start's first frame (console.tui.lastframe): taking over a
screen on which that frame is shown already, and keeping this start's first frame."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

    from console.tui.lastframe import FrameSlot

log = logging.getLogger(__name__)


def over_shown_frame(driver: type, frame: FrameSlot) -> type:
    """``driver`` (Textual's terminal driver), taking over a screen on which the last start's
    frame is shown already: the terminal settings are the user's again before Textual reads
    them, and its switch to the alternate screen (which some terminals clear) is skipped."""
    from textual.drivers.linux_driver import LinuxDriver

    if driver is not LinuxDriver:  # another driver asked for (e.g. by TEXTUAL_DRIVER)
        return driver

    class OverShownFrame(LinuxDriver):
        def start_application_mode(self) -> None:
            frame.hand_over()
            super().start_application_mode()

        def write(self, data: str) -> None:
            if not frame.skip_alt_screen(data):
                super().write(data)

    return OverShownFrame


def keep_first_frame(app: App[Any], slot: FrameSlot) -> None:
    """Keep the overview's first frame, as the terminal output Textual wrote for it, for
    the next start to show while Textual loads (see console.tui.lastframe)."""
    screen = app.screen
    if len(app.screen_stack) != 1:
        return
    try:
        # What App._display writes for a full repaint (Textual's own screenshots read the
        # compositor the same way).
        from textual._compositor import CompositorUpdate

        update = screen._compositor.render_update(full=True)
        if not isinstance(update, CompositorUpdate):
            return
        frame = update.render_segments(app.console)
    except Exception:  # a later Textual may render differently: no frame kept, no harm
        log.warning("could not keep the first frame", exc_info=True)
        return
    if frame:
        size = (app.size.width, app.size.height)
        app.run_worker(functools.partial(slot.save, frame, size), thread=True)
