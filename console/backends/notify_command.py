"""The ``command-notify`` notifier: run a command (no shell) with the message as JSON on its
standard input, e.g. a script that mails the release list or pages the on-call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from console.backends.command_deploy import _kill_group, _Tail, last_line
from console.plugins import BackendContext
from console.plugins.options import CommandNotifyConfig
from console.ports import BackendError, Unreachable


class CommandNotifier:
    """Notifier running ``config.command`` once per message."""

    name = "command-notify"

    def __init__(self, config: CommandNotifyConfig, ctx: BackendContext) -> None:
        if not config.command or not config.command[0]:
            raise BackendError(
                "the notify command is empty",
                backend=self.name,
                hint='set backends.notify.command, e.g. ["./notify.sh"]',
            )
        self.config = config
        self.cwd = Path(ctx.workspace)
        self.timeout = config.timeout_seconds
        self.events = frozenset(config.events) if config.events is not None else None

    async def notify(self, message: dict[str, Any]) -> str:
        if self.events is not None and message.get("event") not in self.events:
            return f"not sent: {message.get('event')} is not in backends.notify.events"
        program, timeout = self.config.command[0], self.config.timeout_seconds
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.config.command,
                cwd=self.cwd,
                env={**os.environ, "CD4ML_EVENT": str(message.get("event", ""))},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise Unreachable(
                f"notify command {program} could not be started: {exc.strerror or exc}",
                backend=self.name,
                hint="check backends.notify.command",
            ) from None
        err = _Tail()
        data = json.dumps(message, ensure_ascii=False).encode() + b"\n"
        try:
            await asyncio.wait_for(self._run(proc, data, err), timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise Unreachable(
                f"notify command {program} did not finish within {timeout:g}s", backend=self.name
            ) from None
        except BaseException:
            _kill_group(proc.pid)
            raise
        if proc.returncode:
            detail = last_line(err.data) or "(no output)"
            raise BackendError(
                f"notify command {program} exited {proc.returncode}: {detail}", backend=self.name
            )
        return f"notify command {program} ran"

    @staticmethod
    async def _run(proc: asyncio.subprocess.Process, data: bytes, err: _Tail) -> None:
        assert proc.stdin is not None
        proc.stdin.write(data)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.drain()  # a command that does not read its input is still run
        proc.stdin.close()
        await asyncio.gather(err.drain(proc.stderr), proc.wait())

    async def check(self) -> str:
        return f"runs {self.config.command[0]} (timeout {self.config.timeout_seconds:g}s)"

    async def aclose(self) -> None:
        return None
