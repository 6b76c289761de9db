"""The embedded ``deploy`` backend: run a configured command (no shell) as the deploy effect of a
promotion or rollback. Never retried: a deploy is a mutation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path

from console.logs import excerpt
from console.plugins import BackendContext
from console.plugins.deploy import fill
from console.plugins.options import CommandDeployConfig
from console.ports import BackendError, Unreachable

TAIL_BYTES = 64 * 1024
MAX_LINE = 300
GRACE_SECONDS = 2.0


def last_line(data: bytes) -> str:
    """The last non-blank line of ``data``, printable, masked, then cut to MAX_LINE characters."""
    for line in reversed(data.decode(errors="replace").splitlines()):
        text = "".join(ch if ch.isprintable() else " " for ch in line).strip()
        if text:
            return excerpt(text, MAX_LINE)
    return ""


class _Tail:
    """Drains a stream keeping only its last TAIL_BYTES (a chatty command can not fill memory)."""

    def __init__(self) -> None:
        self.data = b""

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.data = (self.data + chunk)[-TAIL_BYTES:]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class CommandDeployer:
    """Deployer running ``config.command`` with {model} {version} {stage} {actor} substituted."""

    name = "command-deploy"

    def __init__(self, config: CommandDeployConfig, ctx: BackendContext) -> None:
        if not config.command or not config.command[0]:
            raise BackendError(
                "the deploy command is empty",
                backend=self.name,
                hint='set backends.deploy.command, e.g. ["./deploy.sh", "{model}", "{version}"]',
            )
        self.config = config
        self.ctx = ctx
        self.cwd = Path(ctx.workspace)

    def argv(self, model: str, version: str, stage: str, actor: str) -> list[str]:
        """The command with placeholders substituted in each element (never through a shell)."""
        return [fill(element, model, version, stage, actor) for element in self.config.command]

    def _program(self) -> str | None:
        """The executable the command names, resolved like the OS will (relative to the workspace)."""
        program = self.config.command[0]
        if os.sep in program:
            path = Path(program) if os.path.isabs(program) else self.cwd / program
            return str(path) if path.is_file() and os.access(path, os.X_OK) else None
        return shutil.which(program)

    async def deploy(self, model: str, version: str, stage: str, *, actor: str) -> str:
        """Run the command once; its last stdout line (or a default) on success."""
        argv = self.argv(model, version, stage, actor)
        if any("\0" in a for a in argv):
            raise BackendError("a deploy argument contains a NUL byte", backend=self.name)
        env = {
            **os.environ,
            "CD4ML_MODEL": model,
            "CD4ML_VERSION": version,
            "CD4ML_STAGE": stage,
            "CD4ML_ACTOR": actor,
        }
        program = self.config.command[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise Unreachable(
                f"deploy command {program} could not be started: {exc.strerror or exc}",
                backend=self.name,
                hint="check backends.deploy.command (nothing was deployed)",
            ) from None
        out, err = _Tail(), _Tail()
        reading = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
        timeout = self.config.timeout_seconds
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise Unreachable(
                f"deploy command timed out after {timeout:g}s; the outcome is unknown",
                backend=self.name,
                hint="check the deployment by hand before trying again",
            ) from None
        finally:
            # Output left behind by children that outlive the command is not waited for long.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reading, GRACE_SECONDS)
        code = proc.returncode or 0
        if code < 0:
            try:
                why = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"was killed by signal {-code}"
            detail = last_line(err.data) or "(no output)"
            raise BackendError(f"deploy command {why}: {detail}", backend=self.name)
        if code != 0:
            detail = last_line(err.data) or last_line(out.data) or "(no output)"
            raise BackendError(f"deploy command exited {code}: {detail}", backend=self.name)
        return last_line(out.data) or "deploy command succeeded"

    async def check(self) -> str:
        """The command's program exists and is executable."""
        program = self.config.command[0]
        found = self._program()
        if found is None:
            raise Unreachable(
                f"deploy command {program} is not an executable on PATH or in {self.cwd}",
                backend=self.name,
                hint="install it, make it executable (chmod +x) or fix backends.deploy.command",
            )
        return f"deploy command {found} is executable (timeout {self.config.timeout_seconds:g}s)"

    async def aclose(self) -> None:
        return None
