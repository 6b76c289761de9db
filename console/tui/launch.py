"""How the command line opens the console (``cd4ml-console`` and its options): what the app
shows first and how, apart from what tests inject (config, workspace, clock, services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.config.locate import Located
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

    @classmethod
    def of(
        cls,
        located: Located,
        *,
        theme: str | None = None,
        read_only: bool = False,
        model: str | None = None,
        version: str | None = None,
        frame: FrameSlot | None = None,
    ) -> Launch:
        """A start on the workspace whose config was ``located``: its folder's name until the
        config is read, the last session's models kept under its path, and its theme read
        quickly (or as the kept first frame was drawn)."""
        from console.config.locate import peek_theme

        where = located.where
        return cls(
            label=where.name if located.path is None else where.parent.name,
            cache_key=str(where),
            theme=theme,
            peeked_theme=frame.key["peeked_theme"] if frame is not None else peek_theme(located),
            read_only=read_only,
            model=model,
            version=version,
            first_frame=frame,
        )
