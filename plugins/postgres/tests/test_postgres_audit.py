"""The postgres audit store against a real PostgreSQL: the same chain as the SQLite store,
append-only tables, tamper detection, failures that fail closed, and several processes
appending at once."""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cd4ml_console_postgres import PostgresAuditConfig
from cd4ml_console_postgres.schema import SCHEMA_VERSION
from cd4ml_console_postgres.store import PostgresAuditStore, describe_dsn
from postgres_peer import Cluster, free_port, make_store, new_schema
from pydantic import ValidationError

from console.audit import Anchor, Problem, verify_jsonl
from console.backends.sqlite_audit import SqliteAuditStore
from console.domain import AuditEvent
from console.plugins import BackendContext, discover
from console.plugins.options import SqliteAuditConfig
from console.ports import AuditStore, AuditUnavailable

# One peer per worker is enough: keep these tests together under `pytest -n N --dist loadgroup`.
pytestmark = pytest.mark.xdist_group("postgres")
T0 = datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)
FORK = multiprocessing.get_context("fork")


def make_event(i: int = 0, **over: Any) -> AuditEvent:
    """A realistic event; ``i`` varies the model, time and request."""
    fields: dict[str, Any] = {
        "seq": 0,
        "at": T0 + timedelta(minutes=i),
        "actor": "alice from 10.0.0.7",
        "action": ("promote.intent", "promote.outcome", "approve")[i % 3],
        "model": ("churn", "fraud-detector", "ranker")[i % 3],
        "version": f"v1.{i}.0",
        "stage": "prod",
        "before": f"v1.{max(i - 1, 0)}.0",
        "after": f"v1.{i}.0",
        "reason": f"better AUC (#{i}) — approved by bob ✓",
        "result": "ok",
        "request_id": f"req-{i:04d}",
        "details": {"gates": {"auc": 0.91 + i / 1000, "ci": "green"}, "approvers": ["bob"]},
    }
    fields.update(over)
    return AuditEvent(**fields)


async def fill(store: Any, n: int, start: int = 0) -> list[AuditEvent]:
    return [await store.append(make_event(i)) for i in range(start, start + n)]


def test_the_plugin_is_discovered_through_its_entry_point() -> None:
    plugin = discover().get("postgres")
    assert plugin is not None
    assert plugin.kinds == frozenset({"audit"})
    assert plugin.distribution.startswith("cd4ml-console-postgres")


async def test_implements_the_port_and_appends_a_chain(store: PostgresAuditStore) -> None:
    assert isinstance(store, AuditStore) and store.name == "postgres"
    assert await store.head() == (0, "")
    first = await store.append(make_event(0, seq=99, prev_hash="x", hash="y"))
    second = await store.append(make_event(1))
    assert (first.seq, first.prev_hash) == (1, "")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert await store.head() == (2, second.hash)
    assert list(await store.events()) == [first, second]
    assert (await store.verify()).ok


async def test_the_chain_is_byte_for_byte_the_sqlite_stores(
    store: PostgresAuditStore, tmp_path: Path
) -> None:
    ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=None, timeout=5)
    sqlite = SqliteAuditStore(SqliteAuditConfig(path=str(tmp_path / "a.sqlite")), ctx)
    try:
        in_pg, in_sqlite = await fill(store, 6), await fill(sqlite, 6)
        assert in_pg == in_sqlite
        assert await store.head() == await sqlite.head()
        assert list(await store.events()) == list(await sqlite.events())
        a, b = io.StringIO(), io.StringIO()
        assert await store.export_jsonl(a) == await sqlite.export_jsonl(b) == 6
        assert a.getvalue() == b.getvalue()
        assert verify_jsonl(a.getvalue().splitlines()).ok
    finally:
        await sqlite.aclose()


async def test_events_filter_page_and_tail(store: PostgresAuditStore) -> None:
    await fill(store, 9)
    assert [e.seq for e in await store.events(model="churn")] == [1, 4, 7]
    assert [e.seq for e in await store.events(since_seq=6)] == [7, 8, 9]
    assert [e.seq for e in await store.events(since_seq=2, limit=3)] == [3, 4, 5]
    assert [e.seq for e in await store.events(limit=2, tail=True)] == [8, 9]
    assert [e.seq for e in await store.events(model="ranker", limit=2, tail=True)] == [6, 9]
    assert [e.seq for e in await store.events(request_id="req-0004")] == [5]


async def test_export_to_files(store: PostgresAuditStore, tmp_path: Path) -> None:
    await fill(store, 5)
    assert await store.export_jsonl(tmp_path / "a.jsonl") == 5
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert verify_jsonl(lines).head_hash == (await store.head())[1]
    assert await store.export_csv(tmp_path / "a.csv", model="churn") == 2
    assert (tmp_path / "a.csv").read_text(encoding="utf-8").count("\n") == 3
    out = io.StringIO()
    assert await store.export(out, "jsonl", model="ranker") == 1
    assert json.loads(out.getvalue())["seq"] == 3


async def test_tables_are_versioned_and_append_only(
    store: PostgresAuditStore, pg_env: Cluster
) -> None:
    await fill(store, 3)
    with pg_env.connect() as conn:
        meta = dict(conn.execute(f"SELECT key, value FROM {store.schema}.meta").fetchall())
        assert meta == {
            "schema_version": str(SCHEMA_VERSION),
            "chain_format": "cd4ml-audit-chain/1",
        }
        for statement in (
            f"UPDATE {store.schema}.events SET model = 'x'",
            f"DELETE FROM {store.schema}.events WHERE seq = 3",
            f"TRUNCATE {store.schema}.events",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    assert (await store.verify()).count == 3


async def test_check_describes_the_store(store: PostgresAuditStore, pg_env: Cluster) -> None:
    await fill(store, 2)
    text = await store.check()
    assert text.startswith("PostgreSQL 15")
    assert text.endswith(
        f"cd4ml@127.0.0.1:{pg_env.port}/postgres (schema {store.schema}): 2 records"
    )
    assert pg_env.password not in text and pg_env.password not in repr(store)


async def test_tampering_is_found_and_a_damaged_head_is_not_extended(
    store: PostgresAuditStore, pg_env: Cluster
) -> None:
    stored = await fill(store, 4)
    anchor = Anchor(count=4, head=stored[-1].hash)
    assert (await store.verify([anchor])).ok
    with pg_env.connect() as conn:
        conn.execute(f"ALTER TABLE {store.schema}.events DISABLE TRIGGER events_append_only")
        conn.execute(f"DELETE FROM {store.schema}.events WHERE seq = 2")
    result = await store.verify([anchor])
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, Problem.SEQ_GAP)
    with pg_env.connect() as conn:
        conn.execute(
            f"UPDATE {store.schema}.events SET record = convert_to("
            "replace(convert_from(record, 'UTF8'), 'bob', 'eve'), 'UTF8')"
            " WHERE seq = 4"
        )
    with pytest.raises(AuditUnavailable, match="seq 4"):
        await store.append(make_event(9))


async def test_events_json_can_not_hold_fail_closed(store: PostgresAuditStore) -> None:
    with pytest.raises(AuditUnavailable, match="can not be recorded"):
        await store.append(make_event(0, details={"x": float("nan")}))
    assert await store.head() == (0, "")


async def test_concurrent_appends_in_one_process_form_one_chain(
    store: PostgresAuditStore,
) -> None:
    stored = await asyncio.gather(*(store.append(make_event(i)) for i in range(20)))
    assert sorted(e.seq for e in stored) == list(range(1, 21))
    result = await store.verify()
    assert (result.ok, result.count) == (True, 20)


async def test_a_kept_request_fold_sees_another_connections_appends(
    pg_env: Cluster, tmp_path: Path
) -> None:
    """The release service keeps its fold of the requests and reads only the events after the
    newest one folded: appends by another process (its own connection) are seen at once."""
    from console.services.release.request_log import RequestLog

    def event(action: str, **over: Any) -> AuditEvent:
        return make_event(0, action=action, model="churn", request_id="req-1", **over)

    schema = new_schema()
    mine, theirs = make_store(pg_env, schema, tmp_path), make_store(pg_env, schema, tmp_path)
    try:
        log = RequestLog()
        await mine.append(event("request", details={"expected": "v1"}))
        await theirs.append(make_event(1))  # another model: not read
        assert (await log.read(mine, "churn", 5))[1] == ["req-1"]
        await theirs.append(event("intent", details={"op": "promote"}))
        await theirs.append(
            event("outcome", result="executed", details={"op": "promote", "intent_seq": 3})
        )
        views, pending = await log.read(mine, "churn", 5)
        assert views["req-1"].state.value == "executed" and pending == []
        assert [e.seq for e in views["req-1"].events] == [1, 3, 4]
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_a_newer_schema_is_refused(pg_env: Cluster, tmp_path: Path) -> None:
    schema = new_schema()
    first = make_store(pg_env, schema, tmp_path)
    await fill(first, 1)
    await first.aclose()
    with pg_env.connect() as conn:
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    later = make_store(pg_env, schema, tmp_path)
    with pytest.raises(AuditUnavailable, match="schema version 99"):
        await later.head()
    await later.aclose()


async def test_credentials_and_connection_failures_fail_closed(
    pg_env: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD4ML_TEST_PG_WRONG", "not-the-password")
    wrong = make_store(pg_env, new_schema(), tmp_path, token_env="CD4ML_TEST_PG_WRONG")
    with pytest.raises(AuditUnavailable, match="password authentication failed") as caught:
        await wrong.append(make_event(0))
    assert "cd4ml-console login postgres" in caught.value.hint
    assert "sent credential 'postgres' from environment variable CD4ML_TEST_PG_WRONG" in (
        caught.value.hint
    )
    assert "not-the-password" not in str(caught.value)

    unset = make_store(pg_env, new_schema(), tmp_path, token_env="CD4ML_TEST_PG_UNSET")
    with pytest.raises(AuditUnavailable, match="no credential 'postgres' found"):
        await unset.append(make_event(0))

    nowhere = make_store(
        pg_env, new_schema(), tmp_path, dsn=f"postgresql://cd4ml@127.0.0.1:{free_port()}/postgres"
    )
    started = time.monotonic()
    with pytest.raises(
        AuditUnavailable, match=r"can not write the audit log at cd4ml@127\.0\.0\.1"
    ):
        await nowhere.append(make_event(0))
    assert time.monotonic() - started < 10
    for s in (wrong, unset, nowhere):
        await s.aclose()


async def _terminate(pg: Cluster) -> None:
    """Kill the server side of every console connection, as a database restart would."""
    with pg.connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'cd4ml-console' AND pid <> pg_backend_pid()"
        )
    await asyncio.sleep(0.1)


async def test_the_connection_is_reopened_after_the_server_drops_it(
    store: PostgresAuditStore, pg_env: Cluster
) -> None:
    await fill(store, 1)
    await _terminate(pg_env)
    assert (await store.head())[0] == 1  # a read reconnects and tries again
    await _terminate(pg_env)
    with pytest.raises(AuditUnavailable, match="can not write"):
        await store.append(make_event(1))  # a write is never retried ...
    await fill(store, 1, start=2)  # ... the next one opens a new connection
    assert (await store.head())[0] == 2
    assert (await store.verify()).ok


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"dsn": "postgresql://u:hunter2@db/x"}, "holds a password"),
        ({"dsn": "host=db password=hunter2"}, "holds a password"),
        ({"dsn": "postgresql://db/x", "schema": "Audit-Log"}, "lower-case"),
        ({"dsn": "host='unterminated"}, "not a libpq connection string"),
        ({"dsn": "postgresql://db/x", "shema": "x"}, "shema"),
    ],
)
def test_config_errors_name_the_problem(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint) as caught:
        PostgresAuditConfig(**options)
    assert "hunter2" not in str(caught.value).split("input_value")[0]


def test_describe_dsn_never_shows_a_secret() -> None:
    assert (
        describe_dsn("postgresql://audit@db.internal:5433/cd4ml") == "audit@db.internal:5433/cd4ml"
    )
    assert describe_dsn("host=/run/pg dbname=x") == "/run/pg/x"


# --- several processes -------------------------------------------------------------------


def _appender(
    dsn: str, schema: str, tmp: str, fd: int, go: Any, count: int | None, seed: int
) -> None:
    """Child: wait for the start signal, append, write each seq to ``fd`` once acknowledged."""

    async def run() -> None:
        cluster = Cluster(port=0, password="", folder=Path(tmp))
        store = make_store(cluster, schema, Path(tmp), dsn=dsn)
        await store.head()  # connected (and the schema created) before the race starts
        go.wait(10)
        i = seed
        while count is None or i < seed + count:
            stored = await store.append(make_event(i))
            os.write(fd, f"{stored.seq}\n".encode())
            i += 1
        await store.aclose()

    asyncio.run(run())


def _drain(fd: int) -> list[int]:
    os.set_blocking(fd, False)
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


def _verify(pg: Cluster, schema: str, tmp: Path) -> tuple[bool, int, str]:
    async def run() -> tuple[bool, int, str]:
        store = make_store(pg, schema, tmp)
        try:
            result = await store.verify()
        finally:
            await store.aclose()
        return result.ok, result.count, result.reason

    return asyncio.run(run())


def test_four_processes_appending_at_once_keep_one_chain(pg_env: Cluster, tmp_path: Path) -> None:
    schema = new_schema()
    read, write = os.pipe()
    go = FORK.Event()
    procs = [
        FORK.Process(
            target=_appender, args=(pg_env.dsn, schema, str(tmp_path), write, go, 25, k * 100)
        )
        for k in range(4)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    seqs = _drain(read)
    os.close(read)
    os.close(write)
    assert sorted(seqs) == list(range(1, 101))
    assert _verify(pg_env, schema, tmp_path) == (True, 100, "")


def test_killed_appenders_never_leave_a_broken_chain(pg_env: Cluster, tmp_path: Path) -> None:
    """SIGKILL an appending process at random points: acknowledged events stay, the chain holds."""
    schema = new_schema()
    read, write = os.pipe()
    go = FORK.Event()
    go.set()
    acked: list[int] = []
    for round_ in range(8):
        child = FORK.Process(
            target=_appender,
            args=(pg_env.dsn, schema, str(tmp_path), write, go, None, round_ * 1000),
        )
        child.start()
        time.sleep(0.3 + 0.03 * round_)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        acked += _drain(read)
    os.close(read)
    os.close(write)
    ok, count, reason = _verify(pg_env, schema, tmp_path)
    assert ok, reason
    assert count >= max(acked) and len(acked) > 8
    assert acked == sorted(acked) and len(set(acked)) == len(acked)
