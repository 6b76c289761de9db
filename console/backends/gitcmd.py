"""Async access to git through subprocesses: one formatted command per query, and a long-lived
``git cat-file --batch`` for reading many files at many commits cheaply."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from console.ports import InvalidResponse, NotFound, Unreachable

_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **_GIT_ENV}
    if extra:
        env.update(extra)
    return env


class GitError(Unreachable):
    """git failed; the message carries git's own stderr line."""


async def run_git(
    repo: Path,
    *args: str,
    timeout: float = 10.0,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> tuple[int, bytes, bytes]:
    """Run ``git -C repo ARGS``; returns (returncode, stdout, stderr).

    Raises Unreachable when git is missing, the folder is not a repo, or it times out.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(repo),
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=git_env(env),
        )
    except FileNotFoundError:
        raise Unreachable("git is not installed", backend="git", hint="install git") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise Unreachable(
            f"git {args[0]} took longer than {timeout:.0f}s in {repo}", backend="git"
        ) from None
    except asyncio.CancelledError:  # the caller gave up first: leave no git behind
        _kill(proc)
        raise
    if check and proc.returncode != 0:
        line = err.decode(errors="replace").strip().splitlines()
        msg = line[-1] if line else f"exit code {proc.returncode}"
        if "not a git repository" in msg:
            raise GitError(
                f"{repo} is not a git repository", backend="git", hint="check workspace.path"
            )
        raise GitError(f"git {' '.join(args[:2])} failed: {msg}", backend="git")
    return proc.returncode or 0, out, err


_reaping: set[asyncio.Task[None]] = set()


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` without waiting for it here (the caller is being cancelled): a task
    reads its pipes to the end and reaps it while the loop runs. Left to garbage collection
    after the loop closed, its transport would print 'Event loop is closed' on the terminal;
    :func:`reap_killed` lets the owner of the loop wait for those tasks before it ends."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    task = asyncio.get_running_loop().create_task(_reap(proc))
    _reaping.add(task)
    task.add_done_callback(_reaping.discard)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.communicate(), 1.0)  # to EOF on every pipe, and the exit
    except Exception:  # a child of git may still hold a pipe open
        pass
    finally:
        # asyncio has no public way to close a Process's transport; closed now, while the
        # loop runs, it has nothing left to do when it is collected.
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()


async def reap_killed(timeout: float = 2.0) -> None:
    """Wait (up to ``timeout``) until the git processes killed on this loop are reaped."""
    loop = asyncio.get_running_loop()
    pending = [t for t in _reaping if t.get_loop() is loop and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
        await asyncio.sleep(0)  # the pipes' closing callbacks


class CatFile:
    """A long-lived ``git cat-file --batch`` reading ``REV:PATH`` objects.

    Requests are serialised with a lock; a missing object returns None. The process is
    restarted if it dies.
    """

    def __init__(self, repo: Path, timeout: float = 10.0) -> None:
        self.repo = repo
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _start(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    "git",
                    "-C",
                    str(self.repo),
                    "cat-file",
                    "--batch",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=git_env(),
                    limit=1 << 26,
                )
            except FileNotFoundError:
                raise Unreachable("git is not installed", backend="git") from None
        return self._proc

    async def read(self, rev: str, path: str) -> bytes | None:
        """Contents of ``path`` at ``rev``, or None when it does not exist there."""
        if "\n" in rev or "\n" in path:
            raise NotFound(f"invalid object name {rev}:{path}", backend="git")
        return await self._request(f"{rev}:{path}", b"blob")

    async def read_commit(self, rev: str) -> bytes | None:
        """The raw commit object ``rev`` names (headers, blank line, message), or None."""
        if "\n" in rev:
            raise NotFound(f"invalid object name {rev}", backend="git")
        return await self._request(f"{rev}^{{commit}}", b"commit")

    async def _request(self, spec: str, want: bytes) -> bytes | None:
        async with self._lock:
            try:
                return await asyncio.wait_for(self._read(spec, want), self.timeout)
            except TimeoutError:
                await self._kill()
                raise Unreachable(f"git cat-file timed out reading {spec}", backend="git") from None
            except (BrokenPipeError, ConnectionResetError, asyncio.IncompleteReadError):
                await self._kill()
                raise Unreachable(f"git cat-file died reading {spec}", backend="git") from None
            except asyncio.CancelledError:
                # A request may be half answered: the next reader would get this answer.
                # Drop the process; the next read starts a fresh one.
                proc, self._proc = self._proc, None
                if proc is not None:
                    _kill(proc)
                raise

    async def _read(self, spec: str, want: bytes = b"blob") -> bytes | None:
        proc = await self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(spec.encode() + b"\n")
        await proc.stdin.drain()
        header = await proc.stdout.readline()
        if not header:
            raise asyncio.IncompleteReadError(b"", None)
        parts = header.split()
        if len(parts) >= 2 and parts[-1] == b"missing":
            return None
        if len(parts) >= 2 and parts[1] == b"ambiguous":
            return None
        if len(parts) != 3:
            raise InvalidResponse(f"unexpected cat-file header {header!r}", backend="git")
        size = int(parts[2])
        body = await proc.stdout.readexactly(size + 1)
        if parts[1] != want:
            return None
        return body[:-1]

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                proc.kill()
                await proc.wait()
