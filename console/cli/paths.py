"""Path options of the CLI, without importing pathlib until a path is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path


def as_path(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    """A path option's value as a Path. click is given no ``path_type``: pathlib (with re,
    fnmatch and urllib.parse) would cost ``--help`` about 5 ms, and is imported only when a
    path is given."""
    if value is None:
        return None
    from pathlib import Path

    return Path(value)
