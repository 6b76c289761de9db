"""The audit head anchor: (count, head hash) kept in a git ref outside the store, so that
removing the newest records (which a hash chain alone can not notice) is detected.

The ref points at a commit whose message's first line is ``COUNT HEAD AT``; each move makes
a new commit whose parent is the previous anchor, so ``git log REF`` is the anchor's history
and the ref only ever moves fast-forward (a remote can refuse anything else). Moves use
compare-and-set: ``git update-ref REF NEW OLD``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from console.audit.chain import Anchor, VerifyResult, compute_hash, format_time, parse_time
from console.backends.gitcmd import run_git
from console.domain import AuditEvent
from console.ports import AuditStore, AuditUnavailable, Conflict, InvalidResponse

ANCHOR_REF = "refs/cd4ml/audit-anchor"
_IDENT = {
    "GIT_AUTHOR_NAME": "cd4ml-console",
    "GIT_AUTHOR_EMAIL": "cd4ml-console@localhost",
    "GIT_COMMITTER_NAME": "cd4ml-console",
    "GIT_COMMITTER_EMAIL": "cd4ml-console@localhost",
}
_LINE_RE = re.compile(r"(\d+) ([0-9a-f]{64}|-) (\S+)")
_empty_trees: dict[Path, str] = {}


class VerifiableStore(AuditStore, Protocol):
    """An audit store that can verify its own stored bytes against anchors."""

    async def verify(self, anchors: Sequence[Anchor] = ()) -> VerifyResult: ...


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


async def _resolve(repo: Path, ref: str, timeout: float) -> str | None:
    code, out, _ = await run_git(
        repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", timeout=timeout, check=False
    )
    return out.decode().strip() if code == 0 and out.strip() else None


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
    Returns the anchor now in place (None for an empty, never anchored log)."""
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
