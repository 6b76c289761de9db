"""The embedded code backend: commits, ranges and diffstats of a local git repository."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from console.domain import Commit, DiffStat
from console.git.cmd import CatFile, run_git
from console.plugins import BackendContext
from console.plugins.options import GitConfig
from console.ports import BackendError, InvalidResponse, NotFound, Unreachable

# One commit per NUL-terminated record (git log -z), fields separated by NUL.
_FORMAT = "%H%x00%an%x00%ae%x00%aI%x00%s"
_WIDTH = 5
MAX_COMMITS = 500
CACHE_SIZE = 1024  # commits and diffstats kept (a screen's worth; status reads each once)
_SHA = re.compile(r"^[0-9a-f]{40}$")
_UNKNOWN = (
    "unknown revision",
    "bad revision",
    "ambiguous argument",
    "bad object",
    "not a valid object",
    "needed a single revision",
    "invalid object name",
)
_SHORTSTAT = re.compile(r"(\d+) (file|insertion|deletion)")
_AUTHOR = re.compile(r"^(?P<name>.*) <(?P<email>[^>]*)> (?P<ts>-?\d+) (?P<tz>[+-]\d{4})$")


def parse_commit_object(sha: str, raw: bytes) -> Commit:
    """A Commit from a raw commit object: the ``author`` header and the message's first line."""
    head, _, message = raw.partition(b"\n\n")
    author = email = ""
    authored_at = None
    for line in head.split(b"\n"):
        if line.startswith(b"author "):
            m = _AUTHOR.match(line[7:].decode(errors="replace"))
            if m:
                author, email = m["name"].strip(), m["email"]
                offset = int(m["tz"][1:3]) * 3600 + int(m["tz"][3:5]) * 60
                zone = timezone(timedelta(seconds=-offset if m["tz"][0] == "-" else offset))
                authored_at = datetime.fromtimestamp(int(m["ts"]), zone)
            break
    subject = message.split(b"\n", 1)[0].decode(errors="replace").strip()
    return Commit(
        sha=sha, author=author, author_email=email, authored_at=authored_at, subject=subject
    )


def _when(date: str) -> datetime | None:
    """``%aI`` of git log; None when git could not read the date (it then prints ``%aI`` as
    is: a crafted author line with a NUL or a newline in it)."""
    try:
        return datetime.fromisoformat(date) if date else None
    except ValueError:
        return None


class GitCodeRepo:
    """CodeRepo over a local git repository through one ``git`` subprocess per query."""

    name = "git"

    def __init__(self, config: GitConfig, ctx: BackendContext) -> None:
        path = Path(config.path) if config.path else ctx.workspace
        self.path = path if path.is_absolute() else ctx.workspace / path
        self.timeout = ctx.timeout
        self._commits: OrderedDict[str, Commit] = OrderedDict()
        self._diffstats: OrderedDict[tuple[str, str], DiffStat] = OrderedDict()
        self._cat: CatFile | None = None

    def _catfile(self) -> CatFile:
        if self._cat is None:
            self._cat = CatFile(self.path, self.timeout)
        return self._cat

    async def _git(self, *args: str, rev: str) -> bytes:
        """Run git; an unknown revision becomes NotFound naming ``rev``."""
        rc, out, err = await run_git(self.path, *args, timeout=self.timeout, check=False)
        if rc == 0:
            return out
        msg = err.decode(errors="replace").strip()
        if "not a git repository" in msg:
            raise Unreachable(
                f"{self.path} is not a git repository",
                backend=self.name,
                hint="check workspace.path or backends.code.path",
            )
        if any(marker in msg.lower() for marker in _UNKNOWN):
            raise NotFound(
                f"no commit {rev!r} in {self.path}",
                backend=self.name,
                hint="fetch it (git fetch) or check the name",
            )
        last = msg.splitlines()[-1] if msg else f"exit code {rc}"
        raise Unreachable(f"git {args[0]} failed in {self.path}: {last}", backend=self.name)

    def _parse(self, out: bytes) -> list[Commit]:
        tokens = out.split(b"\0")
        commits = []
        for i in range(0, len(tokens) - _WIDTH + 1, _WIDTH):
            sha, author, email, date, subject = (
                t.decode(errors="replace") for t in tokens[i : i + _WIDTH]
            )
            sha = sha.strip()
            if not _SHA.match(sha):
                raise InvalidResponse(
                    f"unexpected git log output near {sha[:40]!r}", backend=self.name
                )
            commit = self._commits.get(sha)
            if commit is None:
                commit = Commit(
                    sha=sha,
                    author=author,
                    author_email=email,
                    authored_at=_when(date),
                    subject=subject,
                )
                self._remember(sha, commit)
            commits.append(commit)
        return commits

    def _remember(self, sha: str, commit: Commit) -> None:
        self._commits[sha] = commit
        self._commits.move_to_end(sha)
        while len(self._commits) > CACHE_SIZE:
            self._commits.popitem(last=False)

    async def check(self) -> str:
        rc, out, _ = await run_git(
            self.path,
            "rev-parse",
            "HEAD",
            "--abbrev-ref",
            "HEAD",
            timeout=self.timeout,
            check=False,
        )
        if rc == 0:
            sha, branch = [*out.decode().split(), "", ""][:2]
            where = "detached" if branch == "HEAD" else f"on {branch}"
            return f"git repo at {self.path}, HEAD {sha[:8]} {where}"
        # An empty repository has no HEAD commit yet; anything else is a real problem.
        await self._git("rev-parse", "--git-dir", rev="HEAD")
        return f"git repo at {self.path}, no commits yet"

    async def commit(self, rev: str) -> Commit:
        if _SHA.match(rev):
            if rev in self._commits:
                self._commits.move_to_end(rev)
                return self._commits[rev]
            # The hot path (a version's commit): one line to the long-lived cat-file, no
            # process per commit.
            raw = await self._catfile().read_commit(rev)
            if raw is not None:
                commit = parse_commit_object(rev, raw)
                self._remember(rev, commit)
                return commit
        self._reject_option(rev)
        out = await self._git(
            "log",
            "-1",
            "-z",
            f"--format={_FORMAT}",
            "--end-of-options",
            f"{rev}^{{commit}}",
            "--",
            rev=rev,
        )
        commits = self._parse(out)
        if not commits:
            raise NotFound(f"no commit {rev!r} in {self.path}", backend=self.name)
        return commits[0]

    async def commits_many(self, revs: Sequence[str]) -> dict[str, Commit | BackendError]:
        """``commit(rev)`` of every rev: the full shas read in one batch of the long-lived
        ``cat-file``; other revs (names, short shas) one by one."""
        unique = list(dict.fromkeys(revs))
        out: dict[str, Commit | BackendError] = {}
        ask = []
        for rev in unique:
            if rev in self._commits:
                out[rev] = self._commits[rev]
            elif _SHA.match(rev):
                ask.append(rev)
        if ask:
            got = await self._catfile().many([f"{r}^{{commit}}" for r in ask])
            for rev, obj in zip(ask, got, strict=True):
                if obj is not None and obj.type == "commit":
                    commit = parse_commit_object(rev, obj.data)
                    self._remember(rev, commit)
                    out[rev] = commit
        for rev in unique:
            if rev not in out:  # names, short shas, and shas git does not have
                try:
                    out[rev] = await self.commit(rev)
                except BackendError as exc:
                    out[rev] = exc
        return out

    async def commits_between(self, base: str | None, head: str) -> Sequence[Commit]:
        """Commits reachable from ``head`` but not ``base``, newest first (at most 500)."""
        self._reject_option(head)
        revs = [f"{head}^{{commit}}"]
        if base is not None:
            self._reject_option(base)
            revs.append(f"^{base}^{{commit}}")
        out = await self._git(
            "log",
            "-z",
            f"--format={_FORMAT}",
            f"--max-count={MAX_COMMITS}",
            "--end-of-options",
            *revs,
            "--",
            rev=head if base is None else f"{base}..{head}",
        )
        return tuple(self._parse(out))

    async def diffstat(self, base: str, head: str) -> DiffStat:
        key = (base, head)
        if key in self._diffstats:
            return self._diffstats[key]
        self._reject_option(base)
        self._reject_option(head)
        out = await self._git(
            "diff",
            "--shortstat",
            "--end-of-options",
            f"{base}^{{commit}}",
            f"{head}^{{commit}}",
            "--",
            rev=f"{base}..{head}",
        )
        counts = {kind: int(n) for n, kind in _SHORTSTAT.findall(out.decode())}
        stat = DiffStat(
            files=counts.get("file", 0),
            insertions=counts.get("insertion", 0),
            deletions=counts.get("deletion", 0),
        )
        if _SHA.match(base) and _SHA.match(head):  # only immutable ranges are cached
            self._diffstats[key] = stat
            while len(self._diffstats) > CACHE_SIZE:
                self._diffstats.popitem(last=False)
        return stat

    def _reject_option(self, rev: str) -> None:
        if not rev or rev.startswith("-") or "\n" in rev or "\0" in rev:
            raise NotFound(f"{rev!r} is not a revision", backend=self.name)

    async def aclose(self) -> None:
        self._commits.clear()
        self._diffstats.clear()
        cat, self._cat = self._cat, None
        if cat is not None:
            await cat.aclose()
