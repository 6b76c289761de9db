"""The garbage collector around the start-up: the launcher pauses it (``cli.open_tui``), the
app resumes it after the first frame."""

from __future__ import annotations

import gc


def resume_gc() -> None:
    """After the first frame: collect garbage again if the launcher paused the collector for
    the start-up. What the start built lives as long as the app, so it is frozen: later full
    collections do not walk it again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
