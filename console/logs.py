"""Logging to a file (never the terminal: the TUI owns it), with secrets masked."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

_configured = False

MAX_EXCERPT = 200
"""Characters of a peer's text (an error body, an exception) quoted in a message."""
WINDOW = 64 << 10
"""Characters of a body looked at for an excerpt; the rest is never shown."""

# Values after these words are masked in log records (loose: "token abc" too).
_SECRET = re.compile(
    r"(?i)(token|password|passwd|secret|authorization|api[_-]?key)(\s*[=:]\s*|\s+)(bearer\s+|basic\s+)?([^\s,;'\"&]+)"
)
# Anything between scheme:// and an @ (a password may hold an unencoded "/").
_URL_USERINFO = re.compile(r"(\b[A-Za-z][\w+.-]*://)[^\s@]*@")
# Secrets by shape, wherever they appear: key=value, "key": "value", an HTTP credential
# header, Bearer/Basic values, and the token formats of the peers the console talks to. (Not
# "password: text": that is how a hint reads.)
_KEYS = (
    r"(?:access[_-]?token|private[_-]?token|refresh[_-]?token|id[_-]?token|token|password|"
    r"passwd|secret|client[_-]?secret|api[_-]?key|apikey|private[_-]?key|signature|sig)"
)
_PAIR = re.compile(
    rf"(?i)(\b{_KEYS}\s*=\s*[\"']?|\"{_KEYS}\"\s*:\s*\"|'{_KEYS}'\s*:\s*')[^\s,;'\"&<>]+"
)
_HEADER = re.compile(
    r"(?i)(\b(?:authorization|proxy-authorization|private-token|job-token|x-api-key|"
    r"x-auth-token)\s*[=:]\s*)(?:(?:bearer|basic|token)\s+)?[^\s,;'\"&<>]+"
)
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+(?![a-z]+\b)[A-Za-z0-9._~+/=-]{8,}")
_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|gl[a-z]{2,4}-[A-Za-z0-9_-]{20,}"  # GitLab (glpat-, glptt-, gldt-, ...)
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # a JWT (OIDC)
    r"|dapi[0-9a-f]{32}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})"
)


class _Secret(Protocol):
    """A secret that shows itself only when asked (pydantic's ``SecretStr``)."""

    def get_secret_value(self) -> str: ...


# Every form of every credential the console has looked up (console.plugins.credentials keeps
# them here, longest first): held here, below everything that masks text, so that logs need
# not import the plugin kit.
_known_forms: list[_Secret] = []


def known_forms(forms: Iterable[_Secret]) -> None:
    """Mask ``forms`` (longest first) from now on, in place of those known before."""
    _known_forms[:] = forms


def replace_forms(text: str, forms: Iterable[_Secret]) -> str:
    """``text`` with each of ``forms`` masked as ``****``."""
    for form in forms:  # longest first: a form may contain a shorter one
        if form.get_secret_value() in text:
            text = text.replace(form.get_secret_value(), "****")
    return text


def mask_known(text: str) -> str:
    """``text`` with every credential this process has looked up masked (as
    console.plugins.credentials.redact_secrets does); :func:`mask` adds the token shapes."""
    return replace_forms(text, _known_forms)


def mask(text: str) -> str:
    """``text`` with every secret masked as ``****``: each credential the console has looked
    up (raw, URL-encoded, base64, hex; console.plugins.credentials), key=value pairs, Authorization
    and Bearer/Basic values, URL userinfo and common token shapes (GitHub, GitLab, JWT, ...).
    Mask before cutting text short: a cut token is no longer found."""
    text = mask_known(text)
    text = _PAIR.sub(r"\1****", text)
    text = _HEADER.sub(r"\1****", text)
    text = _SCHEME.sub(r"\1 ****", text)
    text = _SHAPES.sub("****", text)
    return _URL_USERINFO.sub(r"\1***@", text)


def redact(text: str) -> str:
    """:func:`mask`, and also any word after "token", "password", ... (for the log file,
    where masking too much costs nothing)."""
    text = _SECRET.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}***", mask(text))
    return _URL_USERINFO.sub(r"\1***@", text)


def cut(text: str, limit: int = MAX_EXCERPT) -> str:
    """``text`` in at most ``limit`` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(text: str, limit: int = MAX_EXCERPT, *, mask_also: Callable[[str], str] = str) -> str:
    """A peer's text (an error page, a JSON body, an exception) fit for a one-line message:
    one line (tags stripped, whitespace collapsed, control characters removed), then masked
    (:func:`mask`, then ``mask_also``), then cut to ``limit`` characters. Masking comes before
    cutting: a token cut in two would no longer be recognised."""
    from console.domain.text import one_line  # pydantic: not before the TUI's first frame

    looked = text[:WINDOW]
    if len(text) > WINDOW:  # a secret cut at the window's end can not be recognised: drop it
        looked = looked[: WINDOW - 1024]
    line = one_line(mask_also(mask(looked)))
    return cut(mask_also(mask(line)), limit)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_file() -> Path:
    override = os.environ.get("CD4ML_LOG_FILE")
    if override:
        return Path(override)
    from platformdirs import user_log_dir

    return Path(user_log_dir("cd4ml-console")) / "console.log"


def _private_log(path: Path) -> None:
    """The log file 0600 in a 0700 folder (the console's own ones): it names models, people
    and hosts, which other users of a shared bastion need not read."""
    from console.cachefiles import PRIVATE_FILE, private_folder

    if not os.environ.get("CD4ML_LOG_FILE"):
        from platformdirs import user_log_dir

        private_folder(path.parent, Path(user_log_dir("cd4ml-console")).parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE))
        return
    # Only a regular file of this user's is tightened: never /dev/null or someone else's.
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
        os.chmod(path, PRIVATE_FILE)


def setup_logging(verbose: bool = False) -> Path:
    """Send the ``console`` logger to the log file; idempotent."""
    global _configured
    path = log_file()
    if _configured:
        return path
    _configured = True
    logger = logging.getLogger("console")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    try:
        _private_log(path)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    return path
