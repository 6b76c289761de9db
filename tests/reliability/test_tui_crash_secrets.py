"""A crash of the TUI itself prints no secret. Textual's default report of an unhandled
exception is a traceback WITH the local variables of every frame; a frame holding a token (a
client's headers, a resolved credential) would print it on the terminal.

The console runs the way a user runs it — ``cd4ml-console --workspace WS`` in a real
pseudo-terminal, over a real workspace (git, GTO tags, DVC-style files, CI records) — and is
made to crash with a secret in the crashing frame's locals and in the exception's message
(inside a URL): once in a key handler (``r`` on the overview), once in a worker thread (building
the services). Everything written to the terminal, TUI frames and the crash report, must hold
the exception and where it happened, and no form of the secret; so must the log file.

This file is also the driver run in the terminal: ``python THIS_FILE WORKSPACE MODE READY``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

CANARY = "CANARY-crash-7f3a+b/c=d_e9Q~x"
USER = "bot"
SIZE = (50, 200)  # rows, columns: wide enough that no path in the report wraps
DEADLINE = 30.0  # seconds for the whole run (it takes ~2 s)
ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\|\x1b[()][\w]|\x1b[=>78cM]"
)


def forms(secret: str) -> set[str]:
    """Every encoding of ``secret`` a leak could take (and of ``user:secret``, Basic auth)."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    for text in (secret, f"{USER}:{secret}"):
        raw = text.encode()
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            b = enc(raw).decode()
            out |= {b, b.rstrip("=")}
        out |= {binascii.hexlify(raw).decode(), binascii.hexlify(raw).decode().upper()}
    return out


def leaks(text: str) -> list[str]:
    return sorted(f for f in forms(CANARY) if f in text)


def plain(raw: bytes) -> str:
    """What the terminal shows, as text: escape sequences out, carriage returns as newlines."""
    return ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r\n", "\n").replace("\r", "\n")


def run_in_terminal(tmp_path: Path, workspace: Path, mode: str) -> tuple[int, bytes]:
    """Run the console on ``workspace`` in a pseudo-terminal; press ``r`` once the services
    are up (mode ``key``). Returns the exit code and every byte written to the terminal."""
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "GIT_"))}
    env.update(
        C_CRASH_TOKEN=CANARY, CD4ML_LOG_FILE=str(tmp_path / "console.log"), HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"),
        TERM="xterm-256color", COLUMNS=str(SIZE[1]), LINES=str(SIZE[0]), PYTHONUNBUFFERED="1",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", NO_COLOR="1",
    )  # fmt: skip
    master, slave = pty.openpty()
    rows, cols = SIZE
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    argv = [sys.executable, __file__, str(workspace), mode, str(ready)]
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = bytearray()
    pressed = False
    started = time.monotonic()
    try:
        while True:
            if time.monotonic() - started > DEADLINE:
                raise AssertionError(
                    f"the console did not exit within {DEADLINE:g}s:\n{plain(out)}"
                )
            if mode == "key" and not pressed and ready.exists():
                time.sleep(0.3)  # let the overview draw its rows
                os.write(master, b"r")
                pressed = True
            readable, _, _ = select.select([master], [], [], 0.05)
            if readable:
                try:
                    chunk = os.read(master, 65536)
                except OSError as exc:  # EIO: the child closed the terminal
                    if exc.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None and not readable:
                # Drain what is left, then stop.
                while select.select([master], [], [], 0.1)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    out += chunk
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        os.close(master)
    return proc.returncode, bytes(out)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.release.conftest import make_workspace

    root = tmp_path_factory.mktemp("crash") / "ws"
    make_workspace(root)
    return root


@pytest.mark.parametrize(
    ("mode", "where"),
    [("key", "crashing_refresh"), ("worker", "crashing_build_services")],
)
def test_a_crash_names_the_error_and_where_but_prints_no_secret(
    tmp_path: Path, workspace: Path, mode: str, where: str
) -> None:
    code, raw = run_in_terminal(tmp_path, workspace, mode)
    shown = plain(raw)
    tail = shown[-3000:]
    assert code == 1, f"exit {code}:\n{tail}"
    assert leaks(shown) == [], f"the secret was printed:\n{tail}"
    # The report names the exception, its (masked) message and where it happened ...
    error = {"key": "RuntimeError: refresh broke", "worker": "ValueError: no services"}[mode]
    assert error in shown, tail
    assert re.search(rf"test_tui_crash_secrets\.py:\d+ in {where}", shown), tail
    assert "***" in shown  # the URL in the message was kept, its credentials masked
    # ... and no local variables: Textual's traceback prints them in a 'locals' table.
    assert "User-Agent" not in shown and "Authorization" not in shown, tail
    # It says where the details are; the log file has them, without the secret either.
    log = tmp_path / "console.log"
    assert f"Details are in the log file {log}" in shown, tail
    logged = log.read_text()
    assert error in logged and where in logged, logged[-3000:]
    assert leaks(logged) == [], logged[-3000:]


def test_textual_still_routes_crashes_through_the_overridden_method() -> None:
    """A Textual upgrade that renames App._fatal_error or stops calling it fails here (and the
    terminal test above would print the secret)."""
    from console.tui.crash import check_textual

    check_textual()


# -- the driver, run in the terminal --------------------------------------------------------------


def crashing_refresh(self: Any) -> None:
    """In place of OverviewScreen.refresh_data (the `r` key): a frame holding a token."""
    token = os.environ["C_CRASH_TOKEN"]
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "cd4ml-console"}
    url = f"https://{USER}:{quote(token, safe='')}@ci.example/api/runs?access_token={token}"
    raise RuntimeError(f"refresh broke: GET {url} failed ({len(headers)} headers sent)")


def crashing_build_services(workspace: Any, clock: Any, **kwargs: Any) -> Any:
    """In place of console.tui.wiring.build_services (a worker thread): a frame holding a token."""
    token = os.environ["C_CRASH_TOKEN"]
    options = {"url": "https://mlflow.example", "token": token, "username": USER}
    raise ValueError(f"no services: options token={token} for {options['url']}")


def drive(workspace: str, mode: str, ready: str) -> None:
    """Plant the crash, then start the console as `cd4ml-console --workspace WORKSPACE`."""
    from textual.app import App

    import console.tui.app as tui_app
    import console.tui.wiring as tui_wiring
    from console.cli import main
    from console.tui.screens.overview import OverviewScreen

    build = tui_wiring.build_services

    def built(*args: Any, **kwargs: Any) -> Any:
        services = build(*args, **kwargs)
        Path(ready).touch()
        return services

    if mode == "key":
        tui_wiring.build_services = built  # type: ignore[assignment]
        OverviewScreen.refresh_data = crashing_refresh  # type: ignore[method-assign]
    else:
        tui_wiring.build_services = crashing_build_services  # type: ignore[assignment]
    hooked = tui_app.ConsoleApp._fatal_error is not App._fatal_error
    if not hooked and not os.environ.get("CRASH_TEST_UNHOOKED"):  # app.py lacks the hook (yet)

        class Hooked(tui_app.ConsoleApp):  # type: ignore[misc, valid-type]
            CSS_PATH = str(Path(tui_app.__file__).with_name("app.tcss"))  # not beside this file

            def _fatal_error(self) -> None:
                from console.tui.crash import report_crash

                report_crash(self)

        tui_app.ConsoleApp = Hooked  # type: ignore[misc]
    sys.argv = ["cd4ml-console", "--workspace", workspace]
    main()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    drive(*sys.argv[1:4])
