"""Formatting for people in a terminal: ages, sizes, metric values and their deltas.

Better/worse is always carried by a glyph and a sign, never by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.style import Style

    from console.services.overview import Section, VersionDetail
    from console.tui.palette import Palette

BETTER = "▲"
WORSE = "▼"
EQUAL = "="
SPARK = "▁▂▃▄▅▆▇█"

CI_GLYPHS = {
    "success": "✓",
    "failure": "✗",
    "running": "○",
    "none": "\u2013",
    "pending": "…",  # the runs are still being read
    "unknown": "?",  # the CI backend failed and no runs were ever read
}
CI_WORDS = {
    "success": "passed",
    "failure": "failed",
    "running": "running",
    "none": "no runs",
    "pending": "CI runs loading",
    "unknown": "CI unknown",
}


def ci_state(detail: VersionDetail) -> str:
    """The CI state a screen shows: ``detail.ci_state``, but "unknown" rather than "none" (no
    runs) when the CI backend failed and no runs were ever read."""
    state: str = detail.ci_state
    section = detail.sections.get("ci")
    if state == "none" and section is not None and section.error:
        return "unknown"
    return state


def age(then: datetime | None, now: datetime) -> str:
    """Compact age: 45s, 12m, 5h, 3d, 7w, 2y; '\u2013' when unknown."""
    if then is None:
        return "\u2013"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit in ("y", "w") else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float) -> str:
    """45s, 12m, 3h05m."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def ago(then: datetime | None, now: datetime) -> str:
    """'3m ago', or 'never' when unknown."""
    return "never" if then is None else f"{age(then, now)} ago"


def when(at: datetime | None) -> str:
    """Short absolute time in UTC: '14 Mar 09:30'."""
    if at is None:
        return "\u2013"
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%d %b %H:%M")


def size(n: int | None) -> str:
    """Bytes with a binary-ish unit: 48.0 MB."""
    if n is None:
        return "\u2013"
    value = float(abs(n))
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return ("-" if n < 0 else "") + text
        value /= 1000
    return str(n)  # unreachable


def signed_size(n: int | None) -> str:
    if n is None:
        return "\u2013"
    return ("+" if n >= 0 else "\u2212") + size(abs(n))


def count(n: int | None) -> str:
    return "\u2013" if n is None else f"{n:,}"


def signed_count(n: int | None) -> str:
    if n is None:
        return "\u2013"
    return ("+" if n >= 0 else "\u2212") + f"{abs(n):,}"


def number(value: float | None, fmt: str = "{:.3f}") -> str:
    """A metric value by its spec's format; '\u2013' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return f"{value:g}"


def signed(value: float | None, fmt: str = "{:.3f}") -> str:
    """A delta with an explicit sign (true minus sign for negatives)."""
    if value is None:
        return "\u2013"
    text = number(abs(value), fmt)
    if text == number(0.0, fmt):
        return "±" + text
    return ("+" if value >= 0 else "\u2212") + text


def better(delta: float | None, direction: str, fmt: str = "{:.3f}") -> bool | None:
    """True when ``delta`` is a change for the better, None when it shows as no change."""
    if delta is None or number(abs(delta), fmt) == number(0.0, fmt):
        return None
    return (delta > 0) == (direction == "higher")


def verdict(better: bool | None, delta: float | None) -> str:
    """The glyph that says better (▲), worse (▼) or unchanged (=)."""
    if delta is None:
        return " "
    if better is None:
        return EQUAL
    return BETTER if better else WORSE


def latency(ms: float | None) -> str:
    if ms is None:
        return "\u2013"
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


def percent(rate: float | None) -> str:
    if rate is None:
        return "\u2013"
    pct = rate * 100
    return f"{pct:.2f}%" if pct < 10 else f"{pct:.1f}%"


def rps(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value:.0f}/s" if value < 10_000 else f"{value / 1000:.1f}k/s"


def spark(values: Sequence[float], width: int) -> str:
    """A block sparkline of the last ``width`` values, scaled to their own range."""
    vals = [v for v in values if v is not None and not math.isnan(v)][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    if span <= 0:
        return SPARK[3] * len(vals)
    top = len(SPARK) - 1
    return "".join(SPARK[round((v - lo) / span * top)] for v in vals)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


# -- a failing backend's section (panels and headers) ----------------------------------------


def data_age(section: Section, now: datetime) -> str:
    """How old the data shown for a failing section is: 'showing data from 5m ago'."""
    if section.fetched_at is not None:
        return f"showing data from {ago(section.fetched_at, now)}"
    return "no data yet"


def section_problem(section: Section, now: datetime) -> str:
    """One sentence about a failing section: reason, and the age of the last good data."""
    return f"{section.error.rstrip('.')} · {data_age(section, now)} · r retries"


def problem_line(section: Section, now: datetime) -> str:
    """The kind, then :func:`section_problem` (without saying the kind twice: 'ci ci backend
    did not answer' reads as a stutter)."""
    problem = section_problem(section, now)
    return problem if problem.startswith(f"{section.name} ") else f"{section.name} {problem}"


# -- live health ------------------------------------------------------------------------------

HEALTH_GLYPHS = {"ok": "✓", "degraded": "!", "breach": "✗", "unknown": "?"}
ROLLED_BACK = "↩"  # a version that was rolled back


def health_word(verdict: str) -> str:
    """The verdict as shown: a breach in capitals, the rest as they are."""
    return "BREACH" if verdict == "breach" else verdict


def health_label(verdict: str) -> str:
    """'✗ BREACH', '✓ ok': a glyph and a word (NO_COLOR reads the same)."""
    return f"{HEALTH_GLYPHS.get(verdict, '?')} {health_word(verdict)}"


def health_style(pal: Palette, verdict: str) -> Style:
    return {"ok": pal.ok, "degraded": pal.warn, "breach": pal.err}.get(verdict, pal.muted)
