"""The audit head anchor: (count, head hash) kept in a git ref outside the store, so that
removing the newest records (which a hash chain alone can not notice) is detected.

The ref points at a commit whose message's first line is ``COUNT HEAD AT``; each move makes
a new commit whose parent is the previous anchor, so ``git log REF`` is the anchor's history
and the ref only ever moves fast-forward (a remote can refuse anything else). Moves use
compare-and-set: ``git update-ref REF NEW OLD``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from console.audit.chain import (
    ANCHOR_RESET,
    Anchor,
    VerifyResult,
    compute_hash,
    format_time,
    parse_time,
)
from console.domain import AuditEvent
from console.git.cmd import run_git
from console.ports import AuditStore, AuditUnavailable, Conflict, InvalidResponse, Unreachable

ANCHOR_REF = "refs/cd4ml/audit-anchor"
RECORDED = "anchor"  # details key of every release event: the anchor it was written under
RECENT = 500  # newest records read for the anchor they remember, before each mutation
_IDENT = {
    "GIT_AUTHOR_NAME": "cd4ml-console",
    "GIT_AUTHOR_EMAIL": "cd4ml-console@localhost",
    "GIT_COMMITTER_NAME": "cd4ml-console",
    "GIT_COMMITTER_EMAIL": "cd4ml-console@localhost",
}
ZERO = "0" * 40
_LINE_RE = re.compile(r"(\d+) ([0-9a-f]{64}|-) (\S+)")
_empty_trees: dict[Path, str] = {}


class VerifiableStore(AuditStore, Protocol):
    """An audit store that can verify its own stored bytes against anchors."""

    async def verify(self, anchors: Sequence[Anchor] | None = None) -> VerifyResult: ...


def anchor_line(count: int, head: str, at: datetime) -> str:
    """The first line of an anchor commit's message."""
    return f"{count} {head or '-'} {format_time(at)}"


def _parse(text: str, commit: str, ref: str) -> Anchor:
    first = text.strip().splitlines()[0] if text.strip() else ""
    match = _LINE_RE.fullmatch(first)
    if match is None:
        raise InvalidResponse(
            f"{ref} at {commit[:12]} does not hold an audit anchor ({first!r})",
            backend="audit-anchor",
            hint=f"inspect it with `git log {ref}`",
        )
    head = "" if match[2] == "-" else match[2]
    try:
        at = parse_time(match[3])
    except ValueError:
        raise InvalidResponse(
            f"{ref} at {commit[:12]}: bad time {match[3]!r}", backend="audit-anchor"
        ) from None
    return Anchor(count=int(match[1]), head=head, at=at, source=commit)


def in_git_repo(path: Path) -> bool:
    """Whether ``path`` is inside a git work tree, by the file system alone (git may be
    missing: that must not make an anchored workspace look like one that has no anchor)."""
    here = path.absolute()
    return any((p / ".git").exists() for p in (here, *here.parents))


async def _resolve(repo: Path, ref: str, timeout: float) -> str | None:
    """The anchor commit ``ref`` points at; None only when the ref does not exist. A ref that
    exists but does not point at a commit (a blob, a tree) is InvalidResponse."""
    code, out, err = await run_git(
        repo, "rev-parse", "--verify", "-q", ref, timeout=timeout, check=False
    )
    if code != 0:
        line = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        if code == 1 and not line:
            return None
        raise Unreachable(
            f"can not read {ref} in {repo}: {line or f'git exit code {code}'}",
            backend="audit-anchor",
        )
    oid = out.decode().strip()
    code, out, _ = await run_git(
        repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", timeout=timeout, check=False
    )
    if code != 0 or not out.strip():
        _, kind, _ = await run_git(repo, "cat-file", "-t", oid, timeout=timeout, check=False)
        raise InvalidResponse(
            f"{ref} in {repo} points at a {kind.decode().strip() or 'missing object'} "
            f"({oid[:12]}), not at an anchor commit",
            backend="audit-anchor",
            hint=f"inspect it with `git cat-file -p {ref}`",
        )
    return out.decode().strip()


async def read_anchor(repo: Path, *, ref: str = ANCHOR_REF, timeout: float = 10.0) -> Anchor | None:
    """The current anchor in ``repo``, or None when it was never written."""
    commit = await _resolve(repo, ref, timeout)
    if commit is None:
        return None
    _, out, _ = await run_git(repo, "log", "-1", "--format=%B", commit, timeout=timeout)
    return _parse(out.decode(errors="replace"), commit, ref)


async def read_anchor_history(
    repo: Path, *, ref: str = ANCHOR_REF, limit: int | None = None, timeout: float = 10.0
) -> list[Anchor]:
    """Every anchor written, newest first (the tip first); empty when there is none."""
    commit = await _resolve(repo, ref, timeout)
    if commit is None:
        return []
    args = ["log", "--first-parent", "--format=%H%x00%B%x00"]
    if limit is not None:
        args.append(f"-{limit}")
    _, out, _ = await run_git(repo, *args, commit, timeout=timeout)
    parts = out.decode(errors="replace").split("\x00")
    return [
        _parse(parts[i + 1], parts[i].strip(), ref)
        for i in range(0, len(parts) - 1, 2)
        if parts[i].strip()
    ]


async def _empty_tree(repo: Path, timeout: float) -> str:
    key = repo.resolve()
    if key not in _empty_trees:
        _, out, _ = await run_git(repo, "mktree", input=b"", timeout=timeout)
        _empty_trees[key] = out.decode().strip()
    return _empty_trees[key]


async def write_anchor(
    repo: Path,
    count: int,
    head: str,
    expected_old: Anchor | None,
    *,
    at: datetime | None = None,
    ref: str = ANCHOR_REF,
    timeout: float = 10.0,
) -> Anchor:
    """Move the anchor to (count, head) if it is still ``expected_old`` (None: absent).

    Raises Conflict when the ref moved meanwhile, or when the move would go backwards.
    """
    if expected_old is not None:
        if count < expected_old.count or (
            count == expected_old.count and head != expected_old.head
        ):
            raise Conflict(
                f"refusing to move {ref} from {expected_old.count} records back to {count}",
                backend="audit-anchor",
                hint="the log lost records since it was anchored: run `cd4ml-console audit verify`",
                expected=str(expected_old.count),
                actual=str(count),
            )
        if count == expected_old.count:
            return expected_old
    at = at or datetime.now(UTC)
    date = f"@{int(at.timestamp())} +0000"
    env = {**_IDENT, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    tree = await _empty_tree(repo, timeout)
    message = f"{anchor_line(count, head, at)}\n\ncd4ml-console audit anchor\n"
    parent = ["-p", expected_old.source] if expected_old is not None and expected_old.source else []
    _, out, _ = await run_git(
        repo, "commit-tree", tree, *parent, input=message.encode(), env=env, timeout=timeout
    )
    new = out.decode().strip()
    old = expected_old.source if expected_old is not None else ""
    code, _, err = await run_git(
        repo, "update-ref", "-m", "audit anchor", ref, new, old, timeout=timeout, check=False
    )
    if code != 0:
        line = (err.decode(errors="replace").strip().splitlines() or [f"exit {code}"])[-1]
        raise Conflict(
            f"{ref} changed while anchoring {count} records: {line}",
            backend="audit-anchor",
            hint="read the anchor again and retry",
            expected=old or None,
        )
    return Anchor(count=count, head=head, at=parse_time(format_time(at)), source=new)


async def _check_extends(store: AuditStore, old: Anchor, count: int, head: str) -> None:
    """Refuse to move the anchor unless the log still holds the old anchored record and the
    records after it chain up to ``head``: moving it over a damaged log would bless it."""
    events: list[AuditEvent] = list(
        await store.events(since_seq=old.count - 1, limit=count - old.count + 1)
    )
    if old.count == 0:
        prev = ""
    elif not events or events[0].seq != old.count or events[0].hash != old.head:
        raise AuditUnavailable(
            f"the audit log no longer matches its anchor at seq {old.count}",
            backend="audit-anchor",
            hint="run `cd4ml-console audit verify` and investigate before anchoring again",
        )
    else:
        prev, events = old.head, events[1:]
    for expect, event in enumerate(events, start=old.count + 1):
        if event.seq != expect or event.prev_hash != prev or compute_hash(event) != event.hash:
            raise AuditUnavailable(
                f"the audit log is damaged at seq {expect}; not anchoring it",
                backend="audit-anchor",
                hint="run `cd4ml-console audit verify`",
            )
        prev = event.hash
    if prev != head:
        raise AuditUnavailable(
            f"the audit log changed while anchoring seq {count}", backend="audit-anchor"
        )


def remembered(event: AuditEvent) -> tuple[int, str] | None:
    """(count, anchor commit) that ``event`` says was in place when it was written
    (``details.anchor``), or None: the log's own, hash-chained memory of its anchor."""
    value = event.details.get(RECORDED)
    if not isinstance(value, dict):
        return None
    count, commit = value.get("count"), value.get("commit")
    if not isinstance(count, int) or isinstance(count, bool) or not isinstance(commit, str):
        return None
    return count, commit


async def remembered_anchors(
    store: AuditStore, *, newest: int | None = None
) -> dict[str, tuple[int, int]]:
    """Anchor commit -> (its count, seq of the newest record remembering it), for the whole
    log or its ``newest`` records."""
    if newest is None:
        events: Sequence[AuditEvent] = await store.events(since_seq=0)
    else:
        count, _ = await store.head()
        events = await store.events(since_seq=max(0, count - newest))
    out: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.action == ANCHOR_RESET:  # an admin accepted the log as it was then
            out.clear()
        elif (got := remembered(event)) is not None:
            out[got[1]] = (got[0], event.seq)
    return out


async def existing_commits(repo: Path, shas: Iterable[str], timeout: float = 10.0) -> set[str]:
    """Which of ``shas`` are commits in ``repo`` (one ``git cat-file --batch-check``)."""
    wanted = [s for s in dict.fromkeys(shas) if re.fullmatch(r"[0-9a-f]{40,64}", s)]
    if not wanted:
        return set()
    _, out, _ = await run_git(
        repo,
        "cat-file",
        "--batch-check",
        input=("\n".join(wanted) + "\n").encode(),
        timeout=timeout,
    )
    lines = out.decode().splitlines()
    return {
        sha for sha, line in zip(wanted, lines, strict=False) if line.split()[1:2] == ["commit"]
    }


async def _history_commits(repo: Path, tip: Anchor | None, timeout: float) -> set[str]:
    if tip is None or not tip.source:
        return set()
    _, out, _ = await run_git(repo, "rev-list", "--first-parent", tip.source, timeout=timeout)
    return set(out.decode().split())


async def _lost_anchor(
    repo: Path, store: AuditStore, tip: Anchor | None, timeout: float, *, newest: int | None
) -> tuple[int, int] | None:
    """(count, seq) of a record remembering an anchor of *this* repository that the ref's
    history no longer holds (the ref was removed or moved back); None when there is none.
    Anchors whose commits this repository does not have are another clone's (a store shared
    by several clones) and are not this ref's to hold."""
    seen = await remembered_anchors(store, newest=newest)
    if not seen:
        return None
    missing = set(seen) - await _history_commits(repo, tip, timeout)
    ours = await existing_commits(repo, missing, timeout)
    return max((seen[c] for c in ours), default=None)


def _anchor_gone(ref: str, repo: Path, recorded: tuple[int, int], why: str) -> AuditUnavailable:
    return AuditUnavailable(
        f"the audit log records that it was anchored (seq {recorded[1]} was written under an "
        f"anchor of {recorded[0]} records), but {why}: records may have been removed, or this "
        f"is not the anchored log",
        backend="audit-anchor",
        hint=f"run `cd4ml-console audit verify`; after investigating, an admin re-anchors with "
        f"`cd4ml-console audit anchor --reset --reason TEXT` ({ref} in {repo})",
    )


async def prove_anchored(
    repo: Path, store: AuditStore, *, ref: str = ANCHOR_REF, timeout: float = 10.0
) -> Anchor | None:
    """Prove, before a mutation, that ``store`` is the log anchored in ``repo``: the anchor is
    readable, the store still holds the anchored record, its records since then chain up to
    its head, and no record remembers an anchor of this repository that the ref's history no
    longer holds. Returns the anchor, or None for a log this repository never anchored;
    AuditUnavailable saying why otherwise (fail closed)."""
    located = in_git_repo(repo)
    try:
        old = await read_anchor(repo, ref=ref, timeout=timeout) if located else None
    except (InvalidResponse, Unreachable) as exc:
        raise AuditUnavailable(
            f"the audit anchor can not be read, so the log can not be checked: {exc.message}",
            backend="audit-anchor",
            hint=exc.hint or f"fix git or {ref} in {repo}, then retry",
        ) from None
    count, head = await store.head()
    if old is None:
        lost = await _lost_anchor(repo, store, None, timeout, newest=None) if located else None
        if lost:
            raise _anchor_gone(ref, repo, lost, f"{ref} is missing in {repo}")
        return None
    if old.count > count or (old.count == count and old.head != head):
        raise AuditUnavailable(
            f"the audit log has {count} records but its anchor says {old.count} "
            f"(seq {old.count} hash {old.head[:12]}): records were removed, or the audit "
            "backend points at another log",
            backend="audit-anchor",
            hint="check backends.audit in the config in use; run `cd4ml-console audit verify`",
        )
    await _check_extends(store, old, count, head)
    lost = await _lost_anchor(repo, store, old, timeout, newest=RECENT)
    if lost:
        raise _anchor_gone(ref, repo, lost, f"{ref} no longer holds that anchor (moved back)")
    return old


async def advance_anchor(
    repo: Path,
    store: AuditStore,
    *,
    ref: str = ANCHOR_REF,
    attempts: int = 5,
    timeout: float = 10.0,
) -> Anchor | None:
    """Anchor the store's current head, after checking the log still extends the old anchor.
    Another process moving the ref first is retried; an anchor already ahead is kept.
    Returns the anchor now in place (None for an empty, never anchored log). A log whose
    records say it was anchored is never given a new first anchor (`audit anchor --reset`)."""
    last: Conflict | None = None
    for _ in range(max(1, attempts)):
        old = await read_anchor(repo, ref=ref, timeout=timeout)
        count, head = await store.head()
        if old is not None and (old.count > count or (old.count == count and old.head != head)):
            raise AuditUnavailable(
                f"the audit log has {count} records but its anchor says {old.count} "
                f"(seq {old.count} hash {old.head[:12]})",
                backend="audit-anchor",
                hint="records were removed or rewritten: run `cd4ml-console audit verify`",
            )
        if count == 0 or (old is not None and old.count == count):
            return old
        if old is not None:
            await _check_extends(store, old, count, head)
        elif lost := await _lost_anchor(repo, store, None, timeout, newest=None):
            raise _anchor_gone(ref, repo, lost, f"{ref} is missing in {repo}")
        try:
            return await write_anchor(repo, count, head, old, ref=ref, timeout=timeout)
        except Conflict as exc:
            last = exc
    assert last is not None
    raise last


async def verify_anchored(
    store: VerifiableStore, repo: Path, *, ref: str = ANCHOR_REF, timeout: float = 10.0
) -> VerifyResult:
    """Verify the store against every anchor ever written to ``ref`` in ``repo``."""
    return await store.verify(await read_anchor_history(repo, ref=ref, timeout=timeout))


async def describe_anchor(repo: Path, *, ref: str = ANCHOR_REF, timeout: float = 10.0) -> str:
    """What ``ref`` holds now, in words (for the record of a re-anchoring)."""
    if not in_git_repo(repo):
        return f"none: {repo} is not a git repository"
    try:
        anchor = await read_anchor(repo, ref=ref, timeout=timeout)
    except (InvalidResponse, Unreachable) as exc:
        return f"unreadable: {exc.message}"
    if anchor is None:
        return f"missing: no {ref}"
    return f"{anchor.count} records, head {anchor.head[:16]} ({anchor.source[:12]})"


async def replace_anchor(
    repo: Path, store: AuditStore, *, ref: str = ANCHOR_REF, timeout: float = 10.0
) -> tuple[Anchor, str]:
    """Start a new anchor history at the store's head (an admin's `audit anchor --reset`):
    whatever ``ref`` held is kept as ``refs/cd4ml/audit-anchor-replaced/<time>`` for the
    investigation. Returns the new anchor and the ref the old one was kept under ("" if none)."""
    if not in_git_repo(repo):
        raise AuditUnavailable(
            f"{repo} is not a git repository: the audit log can not be anchored there",
            backend="audit-anchor",
        )
    code, out, _ = await run_git(repo, "rev-parse", "--verify", "-q", ref, check=False)
    kept = ""
    if code == 0 and out.strip():
        oid = out.decode().strip()
        kept = f"refs/cd4ml/audit-anchor-replaced/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        await run_git(repo, "update-ref", kept, oid, ZERO, timeout=timeout)
        await run_git(repo, "update-ref", "-d", ref, oid, timeout=timeout)
    count, head = await store.head()
    return await write_anchor(repo, count, head, None, ref=ref, timeout=timeout), kept


class GitAnchor:
    """The anchor of ``store`` in the git repository at ``repo``: proved before a release
    action writes anything, advanced after it."""

    def __init__(
        self, repo: Path, store: AuditStore, *, timeout: float = 10.0, ref: str = ANCHOR_REF
    ) -> None:
        self.repo, self.store, self.timeout, self.ref = repo, store, timeout, ref

    async def prove(self) -> Anchor | None:
        return await prove_anchored(self.repo, self.store, ref=self.ref, timeout=self.timeout)

    async def advance(self) -> Anchor | None:
        if not in_git_repo(self.repo):  # nowhere to anchor; `audit verify` says unanchored
            return None
        return await advance_anchor(self.repo, self.store, ref=self.ref, timeout=self.timeout)
