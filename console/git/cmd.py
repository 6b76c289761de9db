"""Async access to git through subprocesses: one formatted command per query, and a long-lived
``git cat-file --batch`` for reading many files at many commits cheaply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

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


class Object(NamedTuple):
    """One object as ``git cat-file --batch`` gives it."""

    oid: str
    type: str
    data: bytes


class _Ask:
    """Requests written together, answered in order; ``fut`` gets every answer at once."""

    __slots__ = ("answers", "fut", "specs")

    def __init__(self, fut: asyncio.Future[list[Object | None]], specs: list[str]) -> None:
        self.fut = fut
        self.specs = specs
        self.answers: list[Object | None] = []


class _Batch:
    """One ``git cat-file --batch`` process, its requests in the order they were written, and
    the task that reads its answers in that order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: deque[_Ask] = deque()
        self.progress = time.monotonic()  # the last answer (or the start)
        self.watchdog: asyncio.TimerHandle | None = None
        self.reader = asyncio.get_running_loop().create_task(self._answer())

    def pending(self) -> str:
        """The request git answers next (for messages)."""
        ask = self.waiting[0]
        return ask.specs[len(ask.answers)]

    async def _answer(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        error: BaseException = Unreachable("git cat-file ended", backend="git")
        try:
            while True:
                header = await stdout.readline()
                if not header:
                    if self.waiting:
                        spec = self.pending()
                        error = Unreachable(f"git cat-file died reading {spec}", backend="git")
                    return
                if not self.waiting:
                    error = InvalidResponse(f"unasked cat-file output {header!r}", backend="git")
                    return
                parts = header.split()
                answer: Object | None
                if len(parts) >= 2 and parts[-1] in (b"missing", b"ambiguous"):
                    answer = None
                elif len(parts) == 3 and parts[2].isdigit():
                    body = await stdout.readexactly(int(parts[2]) + 1)
                    answer = Object(parts[0].decode(), parts[1].decode(), body[:-1])
                else:  # the stream can not be trusted past this: no later answer is read
                    error = InvalidResponse(f"unexpected cat-file header {header!r}", backend="git")
                    return
                ask = self.waiting[0]
                ask.answers.append(answer)
                self.progress = time.monotonic()
                if len(ask.answers) == len(ask.specs):
                    self.waiting.popleft()
                    if not ask.fut.done():  # a caller that gave up left its answers to be skipped
                        ask.fut.set_result(ask.answers)
        except asyncio.IncompleteReadError:
            spec = self.pending() if self.waiting else "?"
            error = Unreachable(f"git cat-file died reading {spec}", backend="git")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken pipe, a closed loop: every waiting read fails
            error = Unreachable(f"git cat-file failed: {type(exc).__name__}", backend="git")
        finally:
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        while self.waiting:
            ask = self.waiting.popleft()
            if not ask.fut.done():
                ask.fut.set_exception(error)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.done()


class CatFile:
    """A long-lived ``git cat-file --batch`` reading ``REV:PATH`` objects.

    Reads are pipelined: each request is written at once and its answer taken, in order, by one
    reader task, so many concurrent reads cost one round trip, not one each; :meth:`many`
    writes a whole batch of requests in one go and waits once for all their answers. A missing
    object returns None. A caller that gives up leaves its answer to be skipped; a process that
    makes no progress for ``timeout`` is killed (its waiting reads fail) and the next read
    starts a fresh one, as does a read after the process died.
    """

    def __init__(self, repo: Path, timeout: float = 10.0) -> None:
        self.repo = repo
        self.timeout = timeout
        self._batch: _Batch | None = None
        self._starting = asyncio.Lock()
        self.requests = 0  # objects asked for, for tests and the bench

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
        [got] = await self._request([f"{rev}:{path}"])
        return got.data if got is not None and got.type == "blob" else None

    async def read_commit(self, rev: str) -> bytes | None:
        """The raw commit object ``rev`` names (headers, blank line, message), or None."""
        if "\n" in rev:
            raise NotFound(f"invalid object name {rev}", backend="git")
        [got] = await self._request([f"{rev}^{{commit}}"])
        return got.data if got is not None and got.type == "commit" else None

    async def many(self, specs: Sequence[str]) -> list[Object | None]:
        """The objects ``specs`` name (``REV``, ``REV:PATH``, an object id), None for each one
        missing: all requests written at once, all answers awaited once."""
        if not specs:
            return []
        bad = next((s for s in specs if "\n" in s or not s), None)
        if bad is not None:
            raise NotFound(f"invalid object name {bad!r}", backend="git")
        return await self._request(list(specs))

    async def _request(self, specs: list[str]) -> list[Object | None]:
        batch = await self._start()
        assert batch.proc.stdin is not None
        fut: asyncio.Future[list[Object | None]] = asyncio.get_running_loop().create_future()
        if not batch.waiting:
            batch.progress = time.monotonic()  # an idle process has not been slow
            self._watch(batch)
        batch.waiting.append(_Ask(fut, specs))
        self.requests += len(specs)
        try:
            batch.proc.stdin.write("".join(f"{s}\n" for s in specs).encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            spec = specs[0]
            self._drop(batch, Unreachable(f"git cat-file died reading {spec}", backend="git"))
        return await fut  # cancelled, the reader skips its answers when they come

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
            spec = batch.pending()
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


# -- paths at commits, resolved in batches ----------------------------------------------------

TREE = "40000"
SHARED = 3  # names looked up in one tree (per round) from which it is cheaper to read it whole


class Entry(NamedTuple):
    """What a path names at a commit: its object id and mode, and its content when git gave
    it on the way (a path asked of git in one request comes with its blob)."""

    oid: str
    mode: str
    data: bytes | None = None

    @property
    def is_blob(self) -> bool:
        return self.mode not in (TREE, "160000")


def parse_tree(raw: bytes) -> dict[bytes, tuple[str, bytes]]:
    """A raw tree object: name -> (mode, binary object id); kept small, trees are many."""
    out: dict[bytes, tuple[str, bytes]] = {}
    modes = _MODES
    i, end = 0, len(raw)
    while i < end:
        space = raw.index(b" ", i)
        nul = raw.index(b"\0", space)
        mode = raw[i:space]
        out[raw[space + 1 : nul]] = (modes.get(mode) or mode.decode(), raw[nul + 1 : nul + 21])
        i = nul + 21
    return out


_MODES = {m.encode(): m for m in ("100644", "100755", "120000", "40000", "160000")}


class _Lookup:
    """One (commit, path) on its way down the trees."""

    __slots__ = ("key", "parts", "tree")

    def __init__(self, key: tuple[str, str], tree: str, parts: list[bytes]) -> None:
        self.key = key
        self.tree = tree
        self.parts = parts


class Trees:
    """Paths at commits resolved to objects with a few pipelined ``cat-file`` rounds.

    git resolves ``REV:PATH`` by reading every tree on the way, for every request: a 4,000-entry
    ``data/`` folder is inflated again for each of 4,000 look-ups (2 s of git at 2,000 models).
    Here a tree that many look-ups go through (and every commit's root tree) is read once and
    kept by its id; a path through a tree used once is still asked of git in one request.
    Everything is keyed by object id, so nothing cached can go stale. Concurrent resolutions
    share the reads they have in common.
    """

    def __init__(self, cat: CatFile, *, entries: int = 20_000, roots: int = 16384) -> None:
        self.cat = cat
        self._roots: OrderedDict[str, str | None] = OrderedDict()  # commit sha -> root tree
        self._trees: OrderedDict[str, dict[bytes, tuple[str, bytes]]] = OrderedDict()
        self._entries = 0  # in the kept trees
        self._max_roots = roots
        self._max_entries = entries
        self._reading: dict[str, asyncio.Future[dict[str, Any]]] = {}  # key -> its read

    async def resolve(
        self, wanted: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Entry | None], set[str]]:
        """((commit, path) -> its entry or None, the commits that do not exist). ``commit``
        must be a full object id (it is cached by it)."""
        found: dict[tuple[str, str], Entry | None] = {}
        commits = list(dict.fromkeys(c for c, _ in wanted))
        roots = await self._shared(
            [f"^{c}" for c in commits], lambda k: self._roots.get(k[1:], _UNKNOWN), self._load_roots
        )
        missing = {c for c in commits if roots[f"^{c}"] is None}
        lookups = []
        for key in dict.fromkeys(wanted):
            root = roots[f"^{key[0]}"]
            if root is None:
                found[key] = None
                continue
            parts = [p.encode() for p in key[1].split("/") if p]
            lookups.append(_Lookup(key, root, parts))
        tops = {lk.tree for lk in lookups}
        while lookups:
            lookups = await self._round(lookups, found, tops)
            tops = set()
        return found, missing

    async def blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        """The contents of blobs by id (each read once)."""
        unique = list(dict.fromkeys(oids))
        got = await self.cat.many(unique)
        return {oid: obj.data for oid, obj in zip(unique, got, strict=True) if obj is not None}

    async def _shared(
        self,
        keys: list[str],
        have: Callable[[str], Any],
        load: Callable[[list[str]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """key -> value: kept, being read by another caller (awaited), or read now."""
        out: dict[str, Any] = {}
        mine: list[str] = []
        theirs: dict[str, asyncio.Future[dict[str, Any]]] = {}
        for key in keys:
            value = have(key)
            if value is not _UNKNOWN:
                out[key] = value
            elif key in self._reading:
                theirs[key] = self._reading[key]
            else:
                mine.append(key)
        if mine:
            out.update(await self._read(mine, load))
        again = []
        for key, fut in theirs.items():
            await asyncio.wait({fut})  # not shielded: our cancellation must not cancel theirs
            if fut.cancelled() or fut.exception() is not None or key not in fut.result():
                again.append(key)  # their read failed: ours says why, if it fails too
            else:
                out[key] = fut.result()[key]
        if again:
            out.update(await self._read(again, load))
        return out

    async def _read(
        self, keys: list[str], load: Callable[[list[str]], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._reading.setdefault(key, fut)
        try:
            got = await load(keys)
        except BaseException:
            fut.cancel()
            raise
        finally:
            for key in keys:
                if self._reading.get(key) is fut:
                    del self._reading[key]
        fut.set_result(got)
        return got

    async def _load_roots(self, keys: list[str]) -> dict[str, Any]:
        got = await self.cat.many([f"{k[1:]}^{{commit}}" for k in keys])
        out: dict[str, Any] = {}
        for key, obj in zip(keys, got, strict=True):
            root = None
            if obj is not None and obj.type == "commit" and obj.data.startswith(b"tree "):
                root = obj.data[5:45].decode()
            out[key] = self._roots[key[1:]] = root
            self._roots.move_to_end(key[1:])
        while len(self._roots) > self._max_roots:
            self._roots.popitem(last=False)
        return out

    async def _load_trees(self, oids: list[str]) -> dict[str, Any]:
        got = await self.cat.many(oids)
        out: dict[str, Any] = {}
        for oid, obj in zip(oids, got, strict=True):
            out[oid] = parse_tree(obj.data) if obj is not None and obj.type == "tree" else {}
            self._keep(oid, out[oid])
        return out

    async def _round(
        self,
        lookups: list[_Lookup],
        found: dict[tuple[str, str], Entry | None],
        roots: set[str],
    ) -> list[_Lookup]:
        """One step down for every look-up: through trees read whole (the commits' roots and
        those many look-ups go through), or the rest of the path asked of git; returns the
        look-ups still on their way."""
        names: dict[str, set[bytes]] = {}
        for lk in lookups:
            if lk.parts:
                names.setdefault(lk.tree, set()).add(lk.parts[0])
        whole = [
            t
            for t, n in names.items()
            if t in roots or len(n) >= SHARED or t in self._trees or t in self._reading
        ]
        reading = set(whole)
        asked = list(
            dict.fromkeys(
                f"{lk.tree}:{b'/'.join(lk.parts).decode()}"
                for lk in lookups
                if lk.parts and lk.tree not in reading
            )
        )
        trees, got = await asyncio.gather(  # both written at once: one round trip
            self._shared(whole, lambda t: self._tree(t) or _UNKNOWN, self._load_trees),
            self.cat.many(asked),
        )
        answers = dict(zip(asked, got, strict=True))
        later: list[_Lookup] = []
        for lk in lookups:
            if not lk.parts:  # the root itself
                found[lk.key] = Entry(lk.tree, TREE)
                continue
            tree = trees.get(lk.tree)
            if tree is None:
                obj = answers[f"{lk.tree}:{b'/'.join(lk.parts).decode()}"]
                found[lk.key] = (
                    None
                    if obj is None
                    else Entry(obj.oid, TREE if obj.type == "tree" else "100644", obj.data)
                )
                continue
            hit = tree.get(lk.parts[0])
            if hit is None:
                found[lk.key] = None
            elif len(lk.parts) == 1:
                found[lk.key] = Entry(hit[1].hex(), hit[0])
            elif hit[0] == TREE:
                later.append(_Lookup(lk.key, hit[1].hex(), lk.parts[1:]))
            else:  # a file where a folder was expected
                found[lk.key] = None
        return later

    def _tree(self, oid: str) -> dict[bytes, tuple[str, bytes]] | None:
        tree = self._trees.get(oid)
        if tree is not None:
            self._trees.move_to_end(oid)
        return tree

    def _keep(self, oid: str, tree: dict[bytes, tuple[str, bytes]]) -> None:
        if oid in self._trees:
            return
        self._trees[oid] = tree
        self._entries += len(tree)
        while self._entries > self._max_entries and len(self._trees) > 1:
            _, dropped = self._trees.popitem(last=False)
            self._entries -= len(dropped)


_UNKNOWN = object()
