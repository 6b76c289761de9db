"""The head anchor in a git ref: compare-and-set moves, history, and verification against it."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import make_event

from console.audit import (
    ANCHOR_REF,
    Anchor,
    Problem,
    advance_anchor,
    read_anchor,
    read_anchor_history,
    verify_anchored,
    write_anchor,
)
from console.backends.sqlite_audit import SqliteAuditStore
from console.ports import AuditUnavailable, Conflict, InvalidResponse

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
AT = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


async def test_no_anchor_reads_as_none(git_repo: Path) -> None:
    assert await read_anchor(git_repo) is None
    assert await read_anchor_history(git_repo) == []


async def test_write_and_read_back(git_repo: Path) -> None:
    anchor = await write_anchor(git_repo, 3, H1, None, at=AT)
    assert (anchor.count, anchor.head, anchor.at) == (3, H1, AT)
    assert await read_anchor(git_repo) == anchor
    assert git(git_repo, "rev-parse", ANCHOR_REF) == anchor.source
    message = git(git_repo, "log", "-1", "--format=%s", ANCHOR_REF)
    assert message == f"3 {H1} 2024-05-01T12:00:00.250000Z"
    # The anchor lives outside the branches: the work tree and HEAD are untouched.
    assert git(git_repo, "log", "--format=%s", "HEAD") == "init"


async def test_moves_are_compare_and_set_and_keep_a_history(git_repo: Path) -> None:
    first = await write_anchor(git_repo, 3, H1, None, at=AT)
    second = await write_anchor(git_repo, 5, H2, first, at=AT)
    with pytest.raises(Conflict, match="changed while anchoring"):
        await write_anchor(git_repo, 7, H3, first, at=AT)  # stale: the ref moved to second
    with pytest.raises(Conflict):
        await write_anchor(git_repo, 7, H3, None, at=AT)  # it exists already
    assert await read_anchor(git_repo) == second
    history = await read_anchor_history(git_repo)
    assert [(a.count, a.head) for a in history] == [(5, H2), (3, H1)]
    assert git(git_repo, "rev-parse", f"{second.source}^") == first.source


async def test_the_anchor_never_moves_backwards(git_repo: Path) -> None:
    first = await write_anchor(git_repo, 5, H1, None, at=AT)
    with pytest.raises(Conflict, match="back to 4"):
        await write_anchor(git_repo, 4, H2, first)
    with pytest.raises(Conflict):
        await write_anchor(git_repo, 5, H2, first)
    assert await write_anchor(git_repo, 5, H1, first) == first


async def test_a_foreign_ref_is_reported(git_repo: Path) -> None:
    git(git_repo, "update-ref", ANCHOR_REF, "HEAD")
    with pytest.raises(InvalidResponse, match="does not hold an audit anchor"):
        await read_anchor(git_repo)


async def test_advance_anchors_the_store_and_verify_uses_it(
    git_repo: Path, store: SqliteAuditStore
) -> None:
    assert await advance_anchor(git_repo, store) is None  # nothing to anchor yet
    unanchored = await verify_anchored(store, git_repo)
    assert unanchored.ok and unanchored.note == "the log is empty"
    for i in range(3):
        await store.append(make_event(i))
    result = await verify_anchored(store, git_repo)
    assert result.ok and result.unanchored_since == 1
    assert result.note.startswith("unanchored since seq 1 (2024-05-01T09:30:00.123456Z)")
    anchor = await advance_anchor(git_repo, store)
    assert anchor is not None and (anchor.count, anchor.head) == await store.head()
    for i in range(3, 5):
        await store.append(make_event(i))
    result = await verify_anchored(store, git_repo)
    assert result.ok and result.unanchored_since == 4 and "anchored up to seq 3" in result.note
    again = await advance_anchor(git_repo, store)
    assert again is not None and again.count == 5
    assert await advance_anchor(git_repo, store) == again  # nothing new: unchanged
    result = await verify_anchored(store, git_repo)
    assert result.ok and result.unanchored_since is None and result.anchor == again


async def test_removing_the_newest_records_is_caught(
    git_repo: Path, store: SqliteAuditStore
) -> None:
    for i in range(6):
        await store.append(make_event(i))
    await advance_anchor(git_repo, store)
    assert store._conn is not None
    store._conn.execute("DROP TRIGGER events_no_delete")
    store._conn.execute("DELETE FROM events WHERE seq > 4")
    result = await verify_anchored(store, git_repo)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 5, Problem.TRUNCATED)
    assert "the newest 2 records (seq 5..6) were removed" in result.reason
    # ...and the anchor refuses to paper over it, even after new appends.
    for i in range(6, 9):
        await store.append(make_event(i))
    with pytest.raises(AuditUnavailable, match="no longer matches its anchor at seq 6"):
        await advance_anchor(git_repo, store)
    assert (await read_anchor(git_repo) or Anchor(count=0, head="")).count == 6


async def test_a_shrunken_log_is_refused(git_repo: Path, store: SqliteAuditStore) -> None:
    for i in range(3):
        await store.append(make_event(i))
    await advance_anchor(git_repo, store)
    assert store._conn is not None
    store._conn.execute("DROP TRIGGER events_no_delete")
    store._conn.execute("DELETE FROM events WHERE seq = 3")
    with pytest.raises(AuditUnavailable, match="has 2 records but its anchor says 3"):
        await advance_anchor(git_repo, store)


async def test_concurrent_anchoring_converges(git_repo: Path, store: SqliteAuditStore) -> None:
    for i in range(4):
        await store.append(make_event(i))
    results = await asyncio.gather(*(advance_anchor(git_repo, store) for _ in range(4)))
    assert {(a.count, a.head) for a in results if a} == {await store.head()}
    assert len(await read_anchor_history(git_repo)) == 1


async def test_anchor_history_pins_a_rewrite(git_repo: Path, store: SqliteAuditStore) -> None:
    for i in range(5):
        await store.append(make_event(i))
        await advance_anchor(git_repo, store)
    assert len(await read_anchor_history(git_repo)) == 5
    assert store._conn is not None
    conn = store._conn
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    # Rewrite seq 3..5 consistently, as someone with the file and this code could.
    from console.audit import seal

    prev = conn.execute("SELECT hash FROM events WHERE seq = 2").fetchone()[0]
    conn.execute("DELETE FROM events WHERE seq >= 3")
    for seq in range(3, 6):
        event, record = seal(make_event(seq - 1, reason="rewritten"), seq, prev)
        conn.execute(
            "INSERT INTO events VALUES (?,?,?,?,?)",
            (seq, event.hash, record, event.model, event.request_id),
        )
        prev = event.hash
    assert (await store.verify()).ok
    result = await verify_anchored(store, git_repo)
    assert (result.first_bad_seq, result.problem) == (3, Problem.ANCHOR_MISMATCH)
