"""The SQLite audit store: appends, reads, durability settings, failures, processes, crashes."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import multiprocessing
import os
import random
import select
import signal
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from audit_helpers import make_event, make_store

from console.audit import Problem, verify_jsonl
from console.backends import sqlite_audit
from console.backends.sqlite_audit import (
    NETWORK_FS,
    SCHEMA_VERSION,
    SqliteAuditStore,
    filesystem_type,
    verify_database,
)
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig
from console.ports import AuditStore, AuditUnavailable


async def fill(store: SqliteAuditStore, n: int) -> None:
    for i in range(n):
        await store.append(make_event(i))


async def test_implements_the_port_and_appends_a_chain(store: SqliteAuditStore) -> None:
    assert isinstance(store, AuditStore) and store.name == "sqlite-audit"
    assert await store.head() == (0, "")
    first = await store.append(make_event(0, seq=99, prev_hash="x", hash="y"))
    second = await store.append(make_event(1))
    assert (first.seq, first.prev_hash) == (1, "")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert await store.head() == (2, second.hash)
    assert list(await store.events()) == [first, second]
    assert store.path == store.path.parent / "audit.sqlite" and store.path.parent.name == "state"


def test_a_relative_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = SimpleNamespace(source=tmp_path / "etc" / "cd4ml-console.toml")
    ctx = BackendContext(workspace=tmp_path / "ws", state_dir=tmp_path / "st", config=config)
    store = SqliteAuditStore(SqliteAuditConfig(path="logs/audit.db"), ctx)
    assert store.path == tmp_path / "etc" / "logs" / "audit.db"
    ctx = BackendContext(workspace=tmp_path / "ws", state_dir=tmp_path / "st", config=None)
    assert SqliteAuditStore(SqliteAuditConfig(path="a.db"), ctx).path == tmp_path / "ws" / "a.db"


async def test_events_filter_page_and_tail(store: SqliteAuditStore) -> None:
    await fill(store, 9)
    assert [e.seq for e in await store.events(model="churn")] == [1, 4, 7]
    assert [e.seq for e in await store.events(since_seq=6)] == [7, 8, 9]
    assert [e.seq for e in await store.events(since_seq=2, limit=3)] == [3, 4, 5]
    assert [e.seq for e in await store.events(limit=2, tail=True)] == [8, 9]
    assert [e.seq for e in await store.events(model="ranker", limit=2, tail=True)] == [6, 9]
    assert [e.seq for e in await store.events(request_id="req-0004")] == [5]


async def test_requests_travel_in_details_and_are_found_by_request_id(
    store: SqliteAuditStore,
) -> None:
    request = {"id": "req-7", "state": "pending", "approvals": [{"actor": "bob", "at": "t"}]}
    await store.append(make_event(0, request_id="req-7", details={"request": request}))
    await store.append(make_event(1, request_id="other"))
    (found,) = await store.events(request_id="req-7")
    assert found.details["request"] == request


async def test_the_file_is_durable_versioned_and_append_only(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    await fill(store, 3)
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta == {"schema_version": str(SCHEMA_VERSION), "chain_format": "cd4ml-audit-chain/1"}
    for statement in ("UPDATE events SET model = 'x'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    head = await store.head()
    await store.aclose()
    reopened = make_store(tmp_path)
    assert await reopened.head() == head
    assert (await reopened.verify()).ok
    await reopened.aclose()


async def test_check_describes_the_store(store: SqliteAuditStore) -> None:
    await fill(store, 2)
    text = await store.check()
    assert text == f"{store.path}: 2 records, journal wal, synchronous=FULL"


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 27 0:50 / /srv/shared\\040state rw,relatime shared:5 - nfs4 fs:/export rw,vers=4.2
41 40 8:2 / /srv/shared\\040state/local rw - ext4 /dev/sdb1 rw
42 27 0:51 / /mnt/box rw,relatime - fuse.sshfs me@box: rw
"""
MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
//nas/share /mnt/nas cifs rw 0 0
"""


@pytest.mark.parametrize(
    "path,table,expected",
    [
        ("/home/alice/.local/state", MOUNTINFO, "ext4"),
        ("/srv/shared state/cd4ml", MOUNTINFO, "nfs4"),
        ("/srv/shared state", MOUNTINFO, "nfs4"),
        ("/srv/shared state/local/x", MOUNTINFO, "ext4"),
        ("/srv/shared statex", MOUNTINFO, "ext4"),
        ("/mnt/box/audit", MOUNTINFO, "fuse.sshfs"),
        ("/mnt/nas/audit", MOUNTS, "cifs"),
        ("/var/lib", MOUNTS, "ext4"),
        ("/var/lib", "", ""),
    ],
)
def test_filesystem_type_reads_mount_tables(path: str, table: str, expected: str) -> None:
    assert filesystem_type(Path(path), table) == expected


@pytest.mark.skipif(not Path("/proc/self/mountinfo").exists(), reason="Linux only")
def test_filesystem_type_of_this_machine_is_known() -> None:
    assert filesystem_type(Path.cwd()) != ""


@pytest.mark.parametrize("allow", [False, True])
async def test_network_file_system_refuses_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow: bool
) -> None:
    assert {"nfs", "nfs4", "cifs", "smb3", "sshfs", "fuse.sshfs", "9p"} <= NETWORK_FS
    monkeypatch.setattr(sqlite_audit, "filesystem_type", lambda path, table=None: "nfs4")
    store = make_store(tmp_path, allow_network_fs=allow)
    await fill(store, 2)
    assert store._conn is not None
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    text = await store.check()
    assert "journal delete, synchronous=FULL" in text and "nfs4" in text
    if allow:
        assert not text.startswith("warning") and "allow_network_fs" in text
    else:
        assert text.startswith("warning:") and "postgres" in text
    assert (await store.verify()).ok
    await store.aclose()


async def test_a_locked_log_fails_closed_naming_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.timeout = 0.2
    await fill(store, 1)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(AuditUnavailable) as err:
            await store.append(make_event(1))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert str(store.path) in str(err.value) and "locked" in str(err.value)
    assert (await store.append(make_event(1))).seq == 2  # works again once released
    await store.aclose()


async def test_a_full_disk_fails_closed_and_nothing_is_half_written(
    store: SqliteAuditStore,
) -> None:
    await fill(store, 2)
    assert store._conn is not None
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(AuditUnavailable, match="disk is full") as err:
        await store.append(make_event(2, details={"blob": "x" * 20000}))
    assert "free space" in err.value.hint
    assert (await store.head())[0] == 2 and (await store.verify()).ok


def test_error_reasons_come_from_sqlite_result_codes(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorname = "SQLITE_READONLY_DBMOVED"  # type: ignore[attr-defined]
    err = store._unavailable(exc, "write")
    assert "because it is read-only" in str(err) and str(store.path) in str(err)
    err = store._unavailable(sqlite3.OperationalError("database or disk is full"), "write")
    assert "disk is full" in str(err)


async def test_an_unusable_folder_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the folder should be")
    store = make_store(tmp_path)
    with pytest.raises(AuditUnavailable, match="can not create the folder"):
        await store.append(make_event(0))


async def test_events_json_can_not_hold_fail_closed(store: SqliteAuditStore) -> None:
    with pytest.raises(AuditUnavailable, match="can not be recorded"):
        await store.append(make_event(0, details={"x": float("nan")}))
    assert await store.head() == (0, "")


async def test_a_damaged_head_is_not_extended(store: SqliteAuditStore) -> None:
    await fill(store, 2)
    assert store._conn is not None
    store._conn.execute("DROP TRIGGER events_no_update")
    store._conn.execute("UPDATE events SET record = CAST(replace(record, 'bob', 'eve') AS BLOB)")
    with pytest.raises(AuditUnavailable, match="seq 2"):
        await store.append(make_event(2))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    await fill(store, 1)
    assert store._conn is not None
    store._conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    await store.aclose()
    with pytest.raises(AuditUnavailable, match="schema version 99"):
        await make_store(tmp_path).head()


async def test_concurrent_appends_in_one_process_form_one_chain(store: SqliteAuditStore) -> None:
    stored = await asyncio.gather(*(store.append(make_event(i)) for i in range(20)))
    assert sorted(e.seq for e in stored) == list(range(1, 21))
    assert (await store.verify()).count == 20


async def test_export_to_files_verifies_offline(store: SqliteAuditStore, tmp_path: Path) -> None:
    await fill(store, 5)
    assert await store.export_jsonl(tmp_path / "a.jsonl") == 5
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert verify_jsonl(lines).ok and verify_jsonl(lines).head_hash == (await store.head())[1]
    assert await store.export_csv(tmp_path / "a.csv", model="churn") == 2
    assert (tmp_path / "a.csv").read_text().count("\n") == 3
    out = io.StringIO()
    assert await store.export(out, "jsonl", model="ranker") == 1
    assert json.loads(out.getvalue())["seq"] == 3


# --- several processes --------------------------------------------------------------

FORK = multiprocessing.get_context("fork")


def _appender(path: str, fd: int, count: int | None, seed: int) -> None:
    """Child: append events, write each seq to ``fd`` once append has returned."""

    async def run() -> None:
        store = make_store(Path(path).parent.parent)
        i = seed
        while count is None or i < seed + count:
            stored = await store.append(make_event(i))
            os.write(fd, f"{stored.seq}\n".encode())
            i += 1
        await store.aclose()

    asyncio.run(run())


def _drain(fd: int) -> list[int]:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [int(x) for x in data.split()]


def _verify_file(path: Path) -> tuple[bool, int, str]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
            return True, 0, ""  # killed before the schema was committed
        result = verify_database(conn)
        return result.ok, result.count, result.reason
    finally:
        conn.close()


def test_appends_from_several_processes_are_serialised(tmp_path: Path) -> None:
    path = make_store(tmp_path).path
    read, write = os.pipe()
    fcntl.fcntl(read, fcntl.F_SETFL, os.O_NONBLOCK)
    procs = [FORK.Process(target=_appender, args=(str(path), write, 25, k * 100)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    seqs = _drain(read)
    os.close(read)
    os.close(write)
    assert sorted(seqs) == list(range(1, 76))
    assert _verify_file(path) == (True, 75, "")


def test_appends_survive_sigkill_at_random_points(tmp_path: Path) -> None:
    """Kill an appending process ~50 times: every acknowledged event stays, nothing is torn."""
    path = make_store(tmp_path).path
    path.parent.mkdir(parents=True)
    rng = random.Random(4)
    read, write = os.pipe()
    fcntl.fcntl(read, fcntl.F_SETFL, os.O_NONBLOCK)
    acked: list[int] = []
    started = time.monotonic()
    for round_ in range(50):
        child = FORK.Process(target=_appender, args=(str(path), write, None, round_ * 1000))
        child.start()
        if round_ % 5 == 0:  # anywhere, including while the file is opened or created
            time.sleep(rng.uniform(0.0, 0.01))
        else:  # once it is appending, at a random point of an append
            select.select([read], [], [], 5)
            time.sleep(rng.uniform(0.0, 0.01))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        acked += _drain(read)
        ok, count, reason = _verify_file(path)
        assert ok, f"round {round_}: {reason}"
        assert count >= max(acked, default=0), f"round {round_}: acknowledged seq lost"
    os.close(read)
    os.close(write)
    assert acked == sorted(acked) and len(set(acked)) == len(acked)
    assert len(acked) > 50, "the kills should land among appends"
    assert time.monotonic() - started < 15


async def test_verify_reports_tampering_through_the_store(store: SqliteAuditStore) -> None:
    await fill(store, 4)
    assert store._conn is not None
    store._conn.execute("DROP TRIGGER events_no_delete")
    store._conn.execute("DELETE FROM events WHERE seq = 2")
    result = await store.verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, Problem.SEQ_GAP)
