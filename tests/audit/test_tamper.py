"""Tampering with the SQLite file directly, the way someone with write access would: every
change must fail verification and name the first bad seq."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import make_event, make_store

from console.audit import Anchor, Problem, VerifyResult, seal
from console.backends.sqlite_audit import verify_database

N = 20
TEXT_COLUMNS = ("hash", "model", "request_id")


async def _build(tmp: Path) -> tuple[Path, list[Anchor]]:
    store = make_store(tmp)
    history = []
    for i in range(N):
        event = await store.append(make_event(i))
        history.append(Anchor(count=event.seq, head=event.hash))
    await store.aclose()
    return store.path, history


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Anchor]]:
    return asyncio.run(_build(tmp_path_factory.mktemp("audit")))


@pytest.fixture
def db(built: tuple[Path, list[Anchor]], tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A private copy of the 20-record log, with the append-only triggers dropped."""
    copy = tmp_path / "audit.sqlite"
    shutil.copyfile(built[0], copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA journal_mode=MEMORY")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    yield conn
    conn.close()


@pytest.fixture
def tip(built: tuple[Path, list[Anchor]]) -> Anchor:
    return built[1][-1]


def _row(conn: sqlite3.Connection, seq: int) -> tuple:
    return conn.execute(
        "SELECT seq, hash, record, model, request_id FROM events WHERE seq = ?", (seq,)
    ).fetchone()


def _insert(conn: sqlite3.Connection, row: tuple) -> None:
    conn.execute(
        "INSERT INTO events (seq, hash, record, model, request_id) VALUES (?,?,?,?,?)", row
    )


def _shift(conn: sqlite3.Connection, after: int, by: int) -> None:
    """Renumber every row with seq > after by ``by`` (two steps: seq is unique)."""
    conn.execute("UPDATE events SET seq = -(seq + ?) WHERE seq > ?", (by, after))
    conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")


def _failed(result: VerifyResult, seq: int, *problems: Problem) -> None:
    assert not result.ok, f"not detected (expected seq {seq})"
    assert result.first_bad_seq == seq, result.reason
    if problems:
        assert result.problem in problems, result.reason
    assert f"seq {seq}" in result.reason


def test_the_untouched_log_verifies(db: sqlite3.Connection, tip: Anchor) -> None:
    result = verify_database(db, [tip])
    assert result.ok and result.count == N and result.head_hash == tip.head


def _text_flips(value: str) -> Iterator[str | bytes]:
    raw = value.encode("utf-8")
    for i in range(len(raw)):
        flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        try:
            yield flipped.decode("utf-8")
        except UnicodeDecodeError:
            yield flipped  # not text any more: stored as a blob, as an editor might


def _int_flips(value: int) -> Iterator[int]:
    """Each byte of the 64-bit integer flipped (low bit, and all bits)."""
    raw = value.to_bytes(8, "big", signed=True)
    for i in range(8):
        for mask in (0x01, 0xFF):
            yield int.from_bytes(
                raw[:i] + bytes([raw[i] ^ mask]) + raw[i + 1 :], "big", signed=True
            )


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_every_single_byte_flip_of_every_column_is_detected(
    db: sqlite3.Connection, tip: Anchor, seq: int
) -> None:
    _, hash_, record, model, request_id = _row(db, seq)
    cases: list[tuple[str, object]] = []
    for i in range(len(record)):
        cases.append(("record", record[:i] + bytes([record[i] ^ 0x01]) + record[i + 1 :]))
    for column, value in zip(TEXT_COLUMNS, (hash_, model, request_id), strict=True):
        cases += [(column, v) for v in _text_flips(value)]
    cases += [("seq", v) for v in _int_flips(seq)]
    cases += [
        (column, value.encode())
        for column, value in zip(TEXT_COLUMNS, (hash_, model, request_id), strict=True)
    ]
    checked = 0
    for column, value in cases:
        db.execute("SAVEPOINT flip")
        try:
            db.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, seq))
        except sqlite3.IntegrityError:  # the flipped seq is taken: not a possible edit
            db.execute("ROLLBACK TO flip")
            db.execute("RELEASE flip")
            continue
        try:
            result = verify_database(db, [tip])
        finally:
            db.execute("ROLLBACK TO flip")
            db.execute("RELEASE flip")
        assert not result.ok, f"{column} flip {value!r} of seq {seq} not detected"
        assert result.first_bad_seq == seq, f"{column} flip of seq {seq}: {result.reason}"
        checked += 1
    assert checked > len(record) + 64
    assert verify_database(db, [tip]).ok


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_deleting_any_record_is_detected(db: sqlite3.Connection, tip: Anchor, seq: int) -> None:
    db.execute("DELETE FROM events WHERE seq = ?", (seq,))
    expected = (Problem.TRUNCATED,) if seq == N else (Problem.SEQ_GAP,)
    _failed(verify_database(db, [tip]), seq, *expected)


@pytest.mark.parametrize("pair", [(1, 2), (1, 20), (4, 5), (7, 13), (19, 20)])
def test_swapping_any_two_records_is_detected(
    db: sqlite3.Connection, tip: Anchor, pair: tuple[int, int]
) -> None:
    a, b = pair
    ra, rb = _row(db, a), _row(db, b)
    db.execute("DELETE FROM events WHERE seq IN (?, ?)", (a, b))
    _insert(db, (a, *rb[1:]))
    _insert(db, (b, *ra[1:]))
    _failed(verify_database(db, [tip]), a, Problem.REORDER)


def test_swapping_every_pair_is_detected(db: sqlite3.Connection, tip: Anchor) -> None:
    rows = {seq: _row(db, seq) for seq in range(1, N + 1)}
    for a in range(1, N + 1):
        for b in range(a + 1, N + 1):
            db.execute("SAVEPOINT swap")
            db.execute("DELETE FROM events WHERE seq IN (?, ?)", (a, b))
            _insert(db, (a, *rows[b][1:]))
            _insert(db, (b, *rows[a][1:]))
            result = verify_database(db, [tip])
            db.execute("ROLLBACK TO swap")
            db.execute("RELEASE swap")
            _failed(result, a, Problem.REORDER)


@pytest.mark.parametrize("seq", [1, 5, 19, 20])
def test_duplicating_a_record_is_detected(db: sqlite3.Connection, tip: Anchor, seq: int) -> None:
    row = _row(db, seq)
    _shift(db, seq, 1)
    _insert(db, (seq + 1, *row[1:]))
    _failed(verify_database(db, [tip]), seq + 1, Problem.DUPLICATE)


def test_duplicating_a_record_at_the_end_is_detected(db: sqlite3.Connection) -> None:
    _insert(db, (N + 1, *_row(db, 3)[1:]))
    _failed(verify_database(db), N + 1, Problem.DUPLICATE)


@pytest.mark.parametrize("after", [0, 1, 10, 19])
def test_inserting_a_forged_record_is_detected(
    db: sqlite3.Connection, tip: Anchor, after: int
) -> None:
    prev = _row(db, after)[1] if after else ""
    forged, record = seal(make_event(50, reason="forged"), after + 1, prev)
    _shift(db, after, 1)
    _insert(db, (after + 1, forged.hash, record, forged.model, forged.request_id))
    # The forged record itself links correctly; the record it displaced does not fit.
    if after + 1 == N:  # the forged record sits where the anchor is: caught right there
        _failed(verify_database(db, [tip]), N, Problem.ANCHOR_MISMATCH)
    else:
        _failed(verify_database(db, [tip]), after + 2, Problem.REORDER)


def test_inserting_a_forged_record_with_renumbering_is_detected(
    db: sqlite3.Connection, tip: Anchor
) -> None:
    rows = [_row(db, s) for s in range(1, N + 1)]
    db.execute("DELETE FROM events")
    prev = ""
    for seq in range(1, N + 2):
        if seq == 6:  # forged, chained properly
            event, record = seal(make_event(50, reason="forged"), 6, prev)
            _insert(db, (6, event.hash, record, event.model, event.request_id))
            prev = event.hash
            continue
        src = rows[seq - 1 if seq < 6 else seq - 2]
        _insert(db, (seq, *src[1:]))
        prev = src[1]
    _failed(verify_database(db, [tip]), 7)


@pytest.mark.parametrize("start", [1, 8, 20])
def test_a_consistent_rewrite_is_caught_by_the_anchor(
    db: sqlite3.Connection, built: tuple[Path, list[Anchor]], start: int
) -> None:
    rows = [_row(db, s) for s in range(1, N + 1)]
    prev = rows[start - 2][1] if start > 1 else ""
    for seq in range(start, N + 1):
        event, record = seal(make_event(seq - 1, reason="rewritten"), seq, prev)
        db.execute("DELETE FROM events WHERE seq = ?", (seq,))
        _insert(db, (seq, event.hash, record, event.model, event.request_id))
        prev = event.hash
    assert verify_database(db).ok  # the chain alone is consistent
    history = built[1]
    _failed(verify_database(db, [history[-1]]), N, Problem.ANCHOR_MISMATCH)
    # With the anchor's history (one anchor per append), the first rewritten seq is named.
    _failed(verify_database(db, history), start, Problem.ANCHOR_MISMATCH)


@pytest.mark.parametrize("dropped", [1, 2, 3, 4, 5])
def test_dropping_the_newest_records_is_caught_by_the_anchor(
    db: sqlite3.Connection, tip: Anchor, dropped: int
) -> None:
    db.execute("DELETE FROM events WHERE seq > ?", (N - dropped,))
    assert verify_database(db).ok  # the chain alone can not tell
    result = verify_database(db, [tip])
    _failed(result, N - dropped + 1, Problem.TRUNCATED)
    assert f"newest {dropped} record" in result.reason


def test_rows_outside_the_chain_are_detected(db: sqlite3.Connection) -> None:
    _insert(db, (-1, *_row(db, 4)[1:]))
    _failed(verify_database(db), 4, Problem.REORDER)
    db.execute("DELETE FROM events WHERE seq = -1")
    _insert(db, (0, "junk", b"junk", "", ""))
    _failed(verify_database(db), 1, Problem.MALFORMED)
