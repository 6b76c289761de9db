"""The rules for text from a backend (console.domain.text), as the domain models and the port
errors apply them: what is removed, what is kept, what is escaped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.domain import AuditEvent, Commit, ModelVersion, RegistryEvent, RegistryEventKind
from console.domain.text import clean_line, clean_text, escape_controls, one_line
from console.ports import BackendError, Unauthorized
from tests.hostile import CLEAR, CONTROLS, OSC52, bad_chars


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_every_control_character_is_removed_or_made_a_space(char: str) -> None:
    line = clean_line(f"a{char}b")
    assert line in ("ab", "a b") and not bad_chars(line)
    text = clean_text(f"a{char}b\nc")
    assert text.endswith("\nc") and not bad_chars(text, multiline=True)
    shown = escape_controls(f"a{char}b")
    assert (
        shown
        == f"a\\{'x' if ord(char) < 0x100 else 'u'}{ord(char):0{2 if ord(char) < 0x100 else 4}x}b"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Eve\x1b[2J\x1b[H", "Eve[2J[H"),
        (f"subject{OSC52}", "subject]52;c;ZWNobyBwd25lZA=="),
        ("tab\there\r\nnext", "tab here  next"),
        ("\u202eevil\u202c", "evil"),
        ("plain ünïcödé and emoji 🚀", "plain ünïcödé and emoji 🚀"),  # untouched
    ],
)
def test_clean_line_examples(text: str, line: str) -> None:
    assert clean_line(text) == line


def test_one_line_reduces_an_error_page_to_its_words() -> None:
    page = (
        "<html>\n<head><title>404 Not Found</title><style>body{color:red}</style></head>\n"
        "<body>\n<center><h1>404 Not Found</h1></center>\n<hr><center>nginx/1.18.0</center>\n"
        "<script>alert(1)</script></body>\n</html>\n"
    )
    assert one_line(page) == "404 Not Found nginx/1.18.0"
    assert one_line("expected <int>\n  got 'x'") == "expected <int> got 'x'"  # not a page


def test_domain_models_clean_what_backends_hand_them() -> None:
    c = Commit(sha="a" * 40, author=f"Eve{CLEAR}", subject=f"fix{OSC52}")
    assert not bad_chars(c.author + c.subject)
    v = ModelVersion(model="m", version="1", created_by="x\x9by", tags={"k\x1b": "v\x07"},
                     params={"a": ["x\x1by", {"b\x1b": "c\x1b"}], "n": 1.5})  # fmt: skip
    assert v.created_by == "xy" and v.tags == {"k": "v"}
    assert v.params == {"a": ["xy", {"b": "c"}], "n": 1.5}
    e = RegistryEvent(model="m", kind=RegistryEventKind.ASSIGN, message="line 1\x1b\nline 2")
    assert e.message == "line 1\nline 2"  # a multi-line field keeps its line breaks


def test_the_audit_event_keeps_its_bytes() -> None:
    """Its hash covers them: an old log with a control character must still verify."""
    e = AuditEvent(seq=1, at=datetime(2025, 1, 1, tzinfo=UTC), actor=f"Eve{CLEAR}", action="x")
    assert e.actor == f"Eve{CLEAR}"


def test_backend_error_messages_are_one_clean_line_whenever_set() -> None:
    err = Unauthorized(f"refused\n<html><title>401</title></html>{CLEAR}", backend="x", hint=OSC52)
    assert "\n" not in str(err) and not bad_chars(str(err))
    err.message += f" (tried 3 times){CLEAR}"  # transports amend messages later
    assert not bad_chars(err.message) and err.message.endswith("(tried 3 times)[2J[H")
    assert (
        not bad_chars(BackendError("x" * 10_000).message)
        and len(BackendError("x" * 10_000).message) <= 2000
    )


def test_an_unexpected_failure_of_a_backend_is_described_in_one_clean_masked_line() -> None:
    """Not a BackendError (a bug in a plugin): its text is shown as a panel's reason."""
    from console.services.overview import describe_error
    from console.services.release.facts import describe

    exc = ValueError(f"bad\nvalue {CLEAR} at http://u:hunter22@h/x?token=s3cr3t-value")
    for said in (describe_error(exc, "ci", 1.0)[0], describe(exc, "ci", 1.0)):
        assert not bad_chars(said) and "\n" not in said
        assert "hunter22" not in said and "s3cr3t" not in said


def test_an_audit_export_to_a_terminal_is_escaped_and_to_a_pipe_exact() -> None:
    import io

    from console.services.release.audit_view import _screen_safe

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    _screen_safe(shown).write(f"1,Eve{CLEAR},ok\r\n")
    assert shown.getvalue() == "1,Eve\\x1b[2J\\x1b[H,ok\n"
    piped = io.StringIO()
    _screen_safe(piped).write(f"1,Eve{CLEAR},ok\r\n")
    assert piped.getvalue() == f"1,Eve{CLEAR},ok\r\n"  # a file gets the exact record
