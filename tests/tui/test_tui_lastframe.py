"""The last start's first frame, shown while Textual loads: only for the same workspace, theme,
terminal and size; only text, colours and cursor moves from the file; the terminal left as it
was whatever happens; and, in a real terminal, Textual taking over the frame without clearing
it, keys typed meanwhile reaching the app and echo back on at exit."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from console.tui import lastframe
from console.tui.lastframe import ALT_SCREEN_ON, FrameSlot, safe_frame, slot_for
from console.tui.startcache import Listed, read_listing, write_listing

FRAME = "\x1b[1;1H\x1b[1mcd4ml-console\x1b[0m ws\n\x1b[2;1Hfraud-detector …"
KEY = {"where": "/ws/one", "theme": None, "env": {"TERM": "xterm-256color"}}


def _slot(tmp_path: Path, key: dict[str, Any] | None = None, size=(120, 40), fd: int = 2):
    return FrameSlot(tmp_path / "frames" / "one.ansi", key or dict(KEY), size, fd=fd)


def _read_all(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0.05)[0]:
        out += os.read(fd, 65536)
    return out


def test_a_kept_frame_is_shown_only_for_the_same_key_and_size(tmp_path):
    assert _slot(tmp_path).save(FRAME, (120, 40))
    assert _slot(tmp_path).read() == FRAME
    assert _slot(tmp_path, size=(80, 24)).read() is None  # the terminal was resized
    assert _slot(tmp_path, {**KEY, "theme": "light"}).read() is None
    assert _slot(tmp_path).save(FRAME, (80, 24)) is False  # resized before the first frame


def test_a_frame_with_any_other_control_sequence_is_never_written(tmp_path):
    for bad in ("\x1b]52;c;aGk=\x07", "\x07", "\x1b[2J", "\x1bP+q\x1b\\", "\r", "\x9b31m"):
        assert not safe_frame(FRAME + bad)
        assert _slot(tmp_path).save(FRAME + bad, (120, 40)) is False
    slot = _slot(tmp_path)
    slot.path.parent.mkdir(parents=True)
    doc = {"version": lastframe.VERSION, "key": KEY, "size": [120, 40]}
    slot.path.write_bytes(json.dumps(doc).encode() + b"\n" + (FRAME + "\x1b]0;owned\x07").encode())
    assert slot.read() is None and slot.show() is False
    slot.path.write_bytes(b"\xff\xfe garbage")
    assert slot.read() is None
    slot.path.write_bytes(b"{}\n" + b"x" * lastframe.MAX_BYTES)
    assert slot.read() is None


def test_shown_frame_goes_to_the_alternate_screen_and_back_if_textual_never_starts(tmp_path):
    master, slave = pty.openpty()
    try:
        _slot(tmp_path).save(FRAME, (120, 40))
        slot = _slot(tmp_path, fd=slave)
        assert slot.show() and slot.shown == FRAME
        shown = _read_all(master).decode()
        assert shown.startswith(ALT_SCREEN_ON) and FRAME.replace("\n", "\r\n") in shown
        slot.release()  # e.g. Ctrl+C while Textual was still importing
        assert _read_all(master).endswith(b"\x1b[?1049l")
        slot.release()
        assert _read_all(master) == b""  # once
    finally:
        os.close(master)
        os.close(slave)


def test_textual_skips_only_its_first_switch_to_the_alternate_screen(tmp_path):
    master, slave = pty.openpty()
    try:
        _slot(tmp_path).save(FRAME, (120, 40))
        slot = _slot(tmp_path, fd=slave)
        assert slot.skip_alt_screen(ALT_SCREEN_ON) is False  # nothing shown: nothing to skip
        slot.show()
        slot.hand_over()
        assert slot.skip_alt_screen("\x1b[?25l") is False
        assert slot.skip_alt_screen(ALT_SCREEN_ON) is True
        assert slot.skip_alt_screen(ALT_SCREEN_ON) is False  # resumed after Ctrl+Z: switch again
        _read_all(master)
        slot.release()
        assert _read_all(master) == b""  # Textual took over: it leaves the screen itself
    finally:
        os.close(master)
        os.close(slave)


def test_an_unchanged_frame_is_not_written_again_and_a_forgotten_one_not_at_all(tmp_path):
    _slot(tmp_path).save(FRAME, (120, 40))
    slot = _slot(tmp_path, fd=os.open(os.devnull, os.O_WRONLY))
    try:
        assert slot.show()
        assert slot.save(FRAME, (120, 40)) is False
        slot.forget()
        assert not slot.path.exists()
        assert slot.save(FRAME + " v2", (120, 40)) is False
    finally:
        os.close(slot.fd)


def test_a_frame_that_cannot_be_kept_is_silent(tmp_path):
    (tmp_path / "frames").write_text("a file where the folder should be")
    assert _slot(tmp_path).save(FRAME, (120, 40)) is False


def test_no_frame_off_a_terminal_under_another_driver_or_when_turned_off(monkeypatch):
    assert slot_for("/ws", theme=None, peeked_theme=None, read_only=False) is None  # pytest
    monkeypatch.setattr(lastframe.os, "isatty", lambda fd: True)
    assert slot_for("/ws", theme=None, peeked_theme=None, read_only=False) is not None
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual.drivers.web_driver:WebDriver")
    assert slot_for("/ws", theme=None, peeked_theme=None, read_only=False) is None
    monkeypatch.delenv("TEXTUAL_DRIVER")
    monkeypatch.setenv(lastframe.OFF_ENV, "1")
    assert slot_for("/ws", theme=None, peeked_theme=None, read_only=False) is None


def test_the_key_holds_the_theme_and_the_terminal(monkeypatch):
    monkeypatch.setattr(lastframe.os, "isatty", lambda fd: True)
    monkeypatch.setenv("NO_COLOR", "1")
    slot = slot_for("/ws", theme="light", peeked_theme="dark", read_only=True)
    assert slot is not None
    assert slot.key["theme"] == "light" and slot.key["peeked_theme"] == "dark"
    assert slot.key["read_only"] is True and slot.key["env"]["NO_COLOR"] == "1"


# -- in the app -------------------------------------------------------------------------------


def _app(world: Any, make_app: Any, slot: FrameSlot) -> Any:
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch

    ready = make_app()
    return ConsoleApp(
        load_config=lambda: ready.config,
        launch=Launch(label="repo-dir", cache_key="/ws/one", first_frame=slot),
        workspace=ready.workspace, release=ready.injected_release, clock=ready.clock,
        refresh_seconds=0,
    )  # fmt: skip


async def _one_start(world: Any, make_app: Any, wait: Any, slot: FrameSlot) -> None:
    app = _app(world, make_app, slot)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot)
        await app.workers.wait_for_complete()


async def test_the_app_keeps_its_first_frame_and_drops_it_when_the_models_change(
    world, make_app, wait, tmp_path
):
    await _one_start(world, make_app, wait, slot := _slot(tmp_path))
    assert not slot.path.exists()  # the first frame had no names: the registry's differ
    listed = read_listing("/ws/one")
    assert listed is not None
    await _one_start(world, make_app, wait, slot := _slot(tmp_path))
    frame = slot.read()
    assert frame is not None and "cd4ml-console" in frame and listed[0][0].name in frame
    assert "opening workspace" in frame  # the first frame, not a later one with live data

    write_listing("/ws/one", [Listed("retired-model")])  # the registry lists others now
    await _one_start(world, make_app, wait, slot := _slot(tmp_path))
    assert not slot.path.exists()


# -- in a real terminal -----------------------------------------------------------------------

SIZE = (30, 100)  # rows, columns


def _start(workspace: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, int]:
    master, slave = pty.openpty()
    rows, cols = SIZE
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    argv = [sys.executable, "-m", "console", "-w", str(workspace)]
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        close_fds=True,
    )  # fmt: skip
    return proc, master, slave


def _read_until(master: int, out: bytearray, done: Any, deadline: float) -> None:
    while not done(bytes(out)):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in time; the terminal got:\n{bytes(out)[-2000:]!r}")
        if select.select([master], [], [], 0.05)[0]:
            try:
                out += os.read(master, 65536)
            except OSError as exc:  # EIO: the child closed the terminal
                if exc.errno != errno.EIO:
                    raise
                return


def _drain(master: int, out: bytearray, seconds: float) -> None:
    """Read what the child writes for ``seconds`` (or until it closed the terminal)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if select.select([master], [], [], 0.05)[0]:
            try:
                out += os.read(master, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                return


def _session(
    workspace: Path, env: dict[str, str], *, early: bytes = b"", then: bytes = b""
) -> tuple[bytes, bool]:
    """One start: wait for the overview's rows to fill and quit with ``q``. Or send ``early``
    as soon as the title shows, before Textual has set the terminal up (checked), then wait
    for ``then`` on the screen and quit. Returns the terminal's bytes and whether echo was on
    again after the exit."""
    proc, master, slave = _start(workspace, env)
    out = bytearray()
    try:
        deadline = time.monotonic() + 30
        if early:
            _read_until(master, out, lambda b: b"cd4ml-console" in b, deadline)
            os.write(master, early)
            assert b"\x1b[?1000h" not in out  # Textual has not enabled the mouse: not started
            if then:
                _read_until(master, out, lambda b: then in b, deadline)
                os.write(master, b"q")
        else:
            _read_until(master, out, lambda b: b"3 models" in b or b"1 model" in b, deadline)
            time.sleep(0.3)
            os.write(master, b"q")
        while proc.poll() is None and time.monotonic() < deadline:
            _drain(master, out, 0.2)
        assert proc.poll() == 0, bytes(out)[-2000:]
        _drain(master, out, 0.2)
        echo = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        os.close(master)
        os.close(slave)
    return bytes(out), echo


@pytest.fixture(scope="module")
def terminal_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.release.conftest import make_workspace

    root = tmp_path_factory.mktemp("lastframe") / "ws"
    make_workspace(root)
    return root


def test_in_a_terminal_the_next_start_shows_the_frame_before_textual(terminal_workspace, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "GIT_"))}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"),
        TERM="xterm-256color", COLUMNS=str(SIZE[1]), LINES=str(SIZE[0]),
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )  # fmt: skip
    env.pop(lastframe.OFF_ENV, None)
    first, _ = _session(terminal_workspace, env)  # saves the model list
    assert not first.startswith(ALT_SCREEN_ON.encode() + b"\x1b[?25l\x1b[?7l")
    _session(terminal_workspace, env)  # saves the first frame showing it
    frames = list((tmp_path / "cache").rglob("*.ansi"))
    assert len(frames) == 1

    third, echo = _session(terminal_workspace, env)
    frame = frames[0].read_bytes().partition(b"\n")[2]
    # The frame comes first, on the alternate screen, before anything Textual writes; Textual
    # does not switch (and clear) again, and leaves the alternate screen at exit.
    assert third.startswith(ALT_SCREEN_ON.encode() + b"\x1b[?25l\x1b[?7l")
    assert frame.replace(b"\n", b"\r\n") in third[: len(frame) + 200]
    assert third.count(ALT_SCREEN_ON.encode()) == 1
    assert third.count(b"\x1b[?1049l") == 1
    assert echo  # the terminal's echo is on again

    # Keys typed while the frame is up (Textual still loading) reach the app as typed: Enter
    # opens the model (it is not turned into Ctrl+J), q quits.
    opened, echo = _session(terminal_workspace, env, early=b"\r", then=b"SAMPLING")
    assert opened.startswith(ALT_SCREEN_ON.encode()) and echo
    early, echo = _session(terminal_workspace, env, early=b"q")
    assert early.startswith(ALT_SCREEN_ON.encode()) and echo


def test_the_frame_is_not_used_when_turned_off(terminal_workspace, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "GIT_"))}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"), TERM="xterm-256color",
        COLUMNS=str(SIZE[1]), LINES=str(SIZE[0]), GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1", **{lastframe.OFF_ENV: "1"},
    )  # fmt: skip
    for _ in range(2):
        _session(terminal_workspace, env)
    assert not list((tmp_path / "cache").rglob("*.ansi"))
