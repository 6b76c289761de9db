"""Text from a backend is untrusted: the one home of what a string may hold before it is shown.

A git tagger, a commit subject, a CI job name or an error page can carry an escape sequence
(``ESC [2J`` clears the screen, OSC 52 writes the clipboard) or a direction override that makes
text read differently. The domain models clean every string a backend hands them (``Line``,
``Lines``), so no port can return one; the audit log keeps its bytes (its hashes cover them)
and is shown through :func:`escape_controls` instead.

Removed: C0 controls, DEL, C1 controls (U+0080-U+009F) and the direction overrides and
isolates (U+202A-U+202E, U+2066-U+2069). ``\\t``, ``\\r`` and the other line breaks become a
space; ``\\n`` is kept only in multi-line fields (a tag message, a commit body).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Direction overrides and isolates: they reorder what follows them on screen."""
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{BIDI}]")
_BREAKS = str.maketrans(dict.fromkeys("\t\n\v\f\r\x1c\x1d\x1e\x85", " "))
_TAG = re.compile(r"<[^<>]{0,2000}>")
_HIDDEN = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_TITLE = re.compile(r"(?is)<title\b[^>]*>(.*?)</title\s*>")
_HTML = re.compile(r"(?i)<(!doctype|html|head|body|title|h[1-6]|p|div|pre|center|table)\b")


def _drop(match: re.Match[str]) -> str:
    return ""


def clean_line(text: str) -> str:
    """``text`` fit for one line of a terminal: line breaks and tabs become spaces, every
    other control character and direction override is removed."""
    if text.isprintable():  # the common case, checked in C
        return text
    return _UNSAFE.sub(_drop, text.translate(_BREAKS))


def clean_text(text: str) -> str:
    """Like :func:`clean_line`, but keeps ``\\n`` (``\\r\\n`` and a lone ``\\r`` become one)."""
    if text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(clean_line(part) for part in text.split("\n"))


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a character :func:`clean_line` would remove or replace."""
    return not text.isprintable() and _UNSAFE.search(text) is not None


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, lines: bool = False) -> str:
    """``text`` with each control character or direction override shown as an escape
    (``\\x1b``, ``\\u202e``): for records whose bytes must be kept, such as the audit log.
    With ``lines``, ``\\n`` is kept as a line break."""
    if text.isprintable():
        return text
    if lines:
        return "\n".join(_UNSAFE.sub(_escaped, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escaped, text)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _page_text(page: str) -> str:
    """The words of an HTML page: its title, then its body without tags, scripts, styles."""
    title = _TITLE.search(page)
    body = _squash(html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", page))))
    head = _squash(html.unescape(_TAG.sub(" ", title[1]))) if title is not None else ""
    return body if head in body[: len(head) + 200] else f"{head} {body}"


def one_line(text: str) -> str:
    """Any body (an HTML error page, a JSON document, a stack trace) as one line of text: an
    HTML page's title and words without tags, scripts or styles, entities decoded; control
    characters removed; whitespace collapsed."""
    if _HTML.search(text[:2000]) is not None:
        text = _page_text(text)
    return _squash(clean_line(text))


def clean_value(value: Any) -> Any:
    """``value`` with every string in it cleaned (:func:`clean_line`), keys included; lists,
    tuples and mappings are walked, anything else (numbers, domain objects) is returned as
    is. For what a port returns outside a domain object (parameters, metric names)."""
    if isinstance(value, str):
        return clean_line(value)
    if isinstance(value, Mapping):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [clean_value(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


Line = Annotated[str, AfterValidator(clean_line)]
"""A one-line string from a backend, cleaned on validation."""
Lines = Annotated[str, AfterValidator(clean_text)]
"""A multi-line string from a backend (a tag message), cleaned on validation."""
Tree = Annotated[dict[str, Any], AfterValidator(clean_value)]
"""Nested values from a backend (training parameters), every string cleaned."""

__all__ = [
    "BIDI",
    "Line",
    "Lines",
    "Tree",
    "clean_line",
    "clean_text",
    "clean_value",
    "escape_controls",
    "has_controls",
    "one_line",
]
