"""The clock the screens render with: the wall clock, or frozen by CD4ML_NOW for screenshots.

Rendering only (ages, "showing data from ..."): the release service never gets this clock, so
CD4ML_NOW can not move a change window, a request's or approval's lifetime, or an audit time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]

ENV_NOW = "CD4ML_NOW"


def wall_clock() -> datetime:
    return datetime.now(UTC)


def parse_now(text: str) -> datetime:
    """An ISO datetime; naive values are taken as UTC. Raises ValueError with the input."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{ENV_NOW}={text!r} is not an ISO datetime like 2025-03-14T09:30:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def frozen(at: datetime) -> Clock:
    """A clock that always answers ``at``."""

    def now() -> datetime:
        return at

    return now


def clock_from_env(environ: dict[str, str] | None = None) -> Clock:
    """Frozen at CD4ML_NOW when set, else the wall clock."""
    text = (environ if environ is not None else os.environ).get(ENV_NOW, "")
    return frozen(parse_now(text)) if text.strip() else wall_clock
