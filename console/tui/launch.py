"""How the command line opens the console (``cd4ml-console`` and its options): what the app
shows first and how, apart from what tests inject (config, workspace, clock, services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.tui.lastframe import FrameSlot


@dataclass(frozen=True)
class Launch:
    """The options of one start of the console."""

    label: str = ""  # the workspace's name on the first frame, until the config is read
    cache_key: str | None = None  # the last session's model list is kept under it (startcache)
    peeked_theme: str | None = None  # the config's theme, read quickly for the first frame
    theme: str | None = None  # --theme: wins over the config's
    read_only: bool = False
    model: str | None = None  # the model (and version) to open at once
    version: str | None = None
    first_frame: FrameSlot | None = None  # where the first frame is kept (tui/lastframe.py)
