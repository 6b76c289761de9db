"""Async access to git through subprocesses: one formatted command per query, and a long-lived
``git cat-file --batch`` for reading many files at many commits cheaply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
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


class _Batch:
    """One ``git cat-file --batch`` process, its requests in the order they were written, and
    the task that reads its answers in that order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: deque[tuple[asyncio.Future[bytes | None], bytes, str]] = deque()
        self.progress = time.monotonic()  # the last answer (or the start)
        self.watchdog: asyncio.TimerHandle | None = None
        self.reader = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        error: BaseException = Unreachable("git cat-file ended", backend="git")
        try:
            while True:
                header = await stdout.readline()
                if not header:
                    if self.waiting:
                        spec = self.waiting[0][2]
                        error = Unreachable(f"git cat-file died reading {spec}", backend="git")
                    return
                if not self.waiting:
                    error = InvalidResponse(f"unasked cat-file output {header!r}", backend="git")
                    return
                fut, want, spec = self.waiting[0]
                parts = header.split()
                if len(parts) >= 2 and parts[-1] in (b"missing", b"ambiguous"):
                    answer = None
                elif len(parts) == 3 and parts[2].isdigit():
                    body = await stdout.readexactly(int(parts[2]) + 1)
                    answer = body[:-1] if parts[1] == want else None
                else:  # the stream can not be trusted past this: no later answer is read
                    error = InvalidResponse(f"unexpected cat-file header {header!r}", backend="git")
                    return
                self.waiting.popleft()
                self.progress = time.monotonic()
                if not fut.done():  # a caller that gave up left its answer to be skipped
                    fut.set_result(answer)
        except asyncio.IncompleteReadError:
            spec = self.waiting[0][2] if self.waiting else "?"
            error = Unreachable(f"git cat-file died reading {spec}", backend="git")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken pipe, a closed loop: every waiting read fails
            error = Unreachable(f"git cat-file failed: {type(exc).__name__}", backend="git")
        finally:
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        while self.waiting:
            fut, _, _ = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(error)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.done()


class CatFile:
    """A long-lived ``git cat-file --batch`` reading ``REV:PATH`` objects.

    Reads are pipelined: each request is written at once and its answer taken, in order, by one
    reader task, so many concurrent reads cost one round trip, not one each. A missing object
    returns None. A caller that gives up leaves its answer to be skipped; a process that makes
    no progress for ``timeout`` is killed (its waiting reads fail) and the next read starts a
    fresh one, as does a read after the process died.
    """

    def __init__(self, repo: Path, timeout: float = 10.0) -> None:
        self.repo = repo
        self.timeout = timeout
        self._batch: _Batch | None = None
        self._starting = asyncio.Lock()

    async def _start(self) -> _Batch:
        batch = self._batch
        if batch is not None and batch.alive:
            return batch
        async with self._starting:
            batch = self._batch
            if batch is not None and batch.alive:
                return batch
            if batch is not None:
                self._drop(batch)
            try:
                proc = await asyncio.create_subprocess_exec(
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
            self._batch = _Batch(proc)
            return self._batch

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
        batch = await self._start()
        assert batch.proc.stdin is not None
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if not batch.waiting:
            batch.progress = time.monotonic()  # an idle process has not been slow
            self._watch(batch)
        batch.waiting.append((fut, want, spec))
        try:
            batch.proc.stdin.write(spec.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            self._drop(batch, Unreachable(f"git cat-file died reading {spec}", backend="git"))
        return await fut  # cancelled, the reader skips its answer when it comes

    def _watch(self, batch: _Batch) -> None:
        """Once ``timeout`` after the last answer, with reads still waiting: the process hangs.
        (The time runs from the last answer: a long queue that moves is not a hung git.)"""

        def check() -> None:
            batch.watchdog = None
            if not batch.waiting or not batch.alive:
                return
            late = batch.progress + self.timeout - time.monotonic()
            if late > 0:
                batch.watchdog = loop.call_later(late, check)
                return
            spec = batch.waiting[0][2]
            self._drop(batch, Unreachable(f"git cat-file timed out reading {spec}", backend="git"))

        loop = asyncio.get_running_loop()
        if batch.watchdog is None:  # one per process
            batch.watchdog = loop.call_later(self.timeout, check)

    def _drop(self, batch: _Batch, error: BaseException | None = None) -> None:
        """Kill ``batch``'s process; its waiting reads fail, the next read starts afresh."""
        if self._batch is batch:
            self._batch = None
        batch.reader.cancel()
        batch.fail(error or Unreachable("git cat-file was restarted", backend="git"))
        _kill(batch.proc)

    async def aclose(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        proc = batch.proc
        if proc.returncode is None and batch.waiting:
            # Reads git has not answered (their callers gave up: a signal, a timeout): it may
            # hang, and nothing waits for the answers.
            proc.kill()
        if proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.wait({batch.reader}, timeout=1)  # it reads to the end and stops
        batch.reader.cancel()
        batch.fail(Unreachable("git cat-file was closed", backend="git"))
