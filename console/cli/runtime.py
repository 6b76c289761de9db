"""What every subcommand shares: the global options (:class:`State`), the exit codes, running
a coroutine with signals and unexpected errors turned into one line, and opening the
workspace. Only click is imported at module level (``--help`` stays fast)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from pathlib import Path

    from console.config import ConsoleConfig
    from console.services.workspace import Workspace

T = TypeVar("T")

EXIT_DEGRADED = 1  # the command ran but some backend failed; output says which
EXIT_USAGE = 2  # bad usage or bad config
EXIT_INTERNAL = 70


def emit_json(doc: Any) -> None:
    """One JSON document on stdout, as every ``--json`` prints it (dates as text)."""
    import json

    click.echo(json.dumps(doc, indent=2, default=str))


class State:
    """Global options shared by every subcommand."""

    def __init__(
        self,
        workspace: Path | None,
        config_file: Path | None,
        theme: str | None,
        read_only: bool,
        verbose: bool,
    ) -> None:
        self.workspace = workspace
        self.config_file = config_file
        self.theme = theme
        self.read_only = read_only
        self.verbose = verbose

    def config(self) -> ConsoleConfig:
        from console.config import ConfigError, load_config

        try:
            return load_config(self.config_file, self.workspace)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)


def fail(message: str, code: int = EXIT_DEGRADED) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


class Signalled(Exception):
    """SIGTERM or SIGHUP arrived: the command was cancelled (its subprocesses killed)."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


async def _until_signalled(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``factory()``; SIGTERM/SIGHUP cancel it, so that cleanup runs and every git or
    deploy subprocess is killed, instead of the default of dying on the spot."""
    import asyncio
    import contextlib
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    got: list[int] = []

    def stop(signum: int) -> None:
        if not got and task is not None:
            got.append(signum)
            task.cancel()

    handled = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
            handled.append(signum)
    try:
        return await factory()
    except asyncio.CancelledError:
        if got:
            raise Signalled(got[0]) from None
        raise
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn unexpected errors into one line plus a log file, never a traceback."""
    import asyncio

    from console.logs import log_file, redact, setup_logging

    setup_logging()
    try:
        return asyncio.run(_until_signalled(factory))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Signalled as exc:
        fail(
            f"stopped by {exc.name}: an action in progress is reconciled on the next start "
            "(`cd4ml-console requests` shows it)",
            128 + exc.signum,
        )
    except (SystemExit, BrokenPipeError):  # the reader went away: see main()
        raise
    except Exception as exc:
        import logging

        logging.getLogger("console").exception("unexpected error")
        fail(
            f"internal error: {type(exc).__name__}: {redact(str(exc))} (details in {log_file()})",
            EXIT_INTERNAL,
        )


def open_ws(state: State) -> Workspace:
    from console.config import ConfigError
    from console.services.workspace import open_workspace

    config = state.config()
    try:
        return open_workspace(config)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


EXIT_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE


def quiet_broken_pipe() -> NoReturn:
    """The reader of stdout went away (`doctor | head -3`): stop at once, say nothing, and
    exit as a program killed by SIGPIPE does, which is what scripts piping into head expect.
    Further writes (the interpreter's last flush) go nowhere instead of failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or replaced: nothing to flush
        pass
    sys.exit(EXIT_PIPE)
