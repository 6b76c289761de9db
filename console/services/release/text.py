"""What a person's text (a reason, a comment) must be before it goes into the audit log.

The TUI's dialogs check it as it is typed; the service checks it again for every caller (the
CLI, scripts), so nothing unreadable is ever recorded.
"""

from __future__ import annotations

import unicodedata

from console.domain.text import BIDI

MAX_TEXT = 1000
"""Characters of a reason or comment: it is one line of the audit log, read by people."""


def text_problem(label: str, text: str) -> str:
    """'' when ``text`` may be recorded as the ``label``; else what is wrong with it, in words.
    Control characters (a pasted escape sequence would repaint the terminal of whoever reads
    the log later) and direction overrides (they make the text read differently) are refused,
    as is a text too long to read in one go."""
    if len(text) > MAX_TEXT:
        return f"the {label} is {len(text):,} characters long: keep it under {MAX_TEXT:,}"
    bad = [c for c in text if unicodedata.category(c) == "Cc" or c in BIDI]
    if bad:
        shown = ", ".join(dict.fromkeys(repr(c)[1:-1] for c in bad[:5]))
        return f"the {label} contains control characters ({shown}): type it as plain text"
    return ""
