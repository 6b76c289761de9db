"""Logging to a file (never the terminal: the TUI owns it), with secrets masked."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

_configured = False

# Values after these words are masked in every log record.
_SECRET = re.compile(
    r"(?i)(token|password|passwd|secret|authorization|api[_-]?key)(\s*[=:]\s*|\s+)(bearer\s+|basic\s+)?([^\s,;'\"&]+)"
)
# Anything between scheme:// and an @ (a password may hold an unencoded "/").
_URL_USERINFO = re.compile(r"(\b[A-Za-z][\w+.-]*://)[^\s@]*@")


def redact(text: str) -> str:
    """Mask credentials in free text (key=value pairs, Authorization headers, URL userinfo)."""
    text = _SECRET.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


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
