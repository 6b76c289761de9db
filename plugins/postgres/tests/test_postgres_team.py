"""The postgres store as a team's store, against a real PostgreSQL: the per-stage intent lock
kept by the server in the append's transaction, and people as database roles — the server
records the connected role and refuses an event in anyone else's name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cd4ml_console_postgres.__main__ import main as sql_main
from cd4ml_console_postgres.schema import SCHEMA_VERSION, grants
from cd4ml_console_postgres.store import PostgresAuditStore
from postgres_peer import PASSWORD_ENV, Cluster, make_store, new_schema
from psycopg import sql
from test_postgres_audit import make_event

from console.audit.chain import seal
from console.domain import AuditEvent
from console.ports import AuditUnavailable, StageBusy

pytestmark = pytest.mark.xdist_group("postgres")


def intent(actor: str = "alice", *, stage: str = "prod", model: str = "churn", **over: Any):
    details = {"op": "promote", "lock": True, **over.pop("details", {})}
    return make_event(
        0, action="intent", actor=actor, model=model, stage=stage, details=details, **over
    )


def outcome(of: AuditEvent, actor: str = "alice") -> AuditEvent:
    return make_event(
        0, action="outcome", actor=actor, model=of.model, stage=of.stage, result="executed",
        details={"op": "promote", "intent_seq": of.seq},
    )  # fmt: skip


# --- the per-stage intent lock ------------------------------------------------------------


async def test_a_locking_intent_holds_its_stage_until_its_outcome(
    store: PostgresAuditStore,
) -> None:
    first = await store.append(intent(before="v1", after="v2"))
    head = await store.head()
    with pytest.raises(StageBusy) as caught:
        await store.append(intent("bob", after="v3"))
    busy = caught.value
    assert busy.intent == first and busy.changed_by == "alice" and busy.actual == "v2"
    assert "prod of churn is being moved by alice since 2024-05-01 09:30:00 UTC" in busy.message
    assert "intent seq 1: v1 -> v2" in busy.message
    assert await store.head() == head  # nothing appended
    other_stage = await store.append(intent("bob", stage="staging"))
    other_model = await store.append(intent("bob", model="ranker"))
    unlocked = await store.append(intent("bob", details={"lock": False}))  # e.g. a deploy
    assert [e.seq for e in await store.open_intents()] == [1, 2, 3]
    assert [e.seq for e in await store.open_intents(model="ranker")] == [other_model.seq]
    await store.append(outcome(first))
    assert [e.seq for e in await store.open_intents()] == [other_stage.seq, other_model.seq]
    again = await store.append(intent("bob"))
    assert again.seq == unlocked.seq + 2
    assert (await store.verify()).ok


async def test_two_connections_racing_for_one_stage_one_wins_each_round(
    pg_env: Cluster, tmp_path: Path
) -> None:
    """Two consoles (two connections) take the lock of one stage at the same moment, 30
    times: exactly one wins each round, the other is told who holds it."""
    schema = new_schema()
    a, b = make_store(pg_env, schema, tmp_path), make_store(pg_env, schema, tmp_path)
    try:
        await a.head(), await b.head()
        for round_ in range(30):
            results = await asyncio.gather(
                a.append(intent("alice", after=f"a{round_}")),
                b.append(intent("bob", after=f"b{round_}")),
                return_exceptions=True,
            )
            won = [r for r in results if isinstance(r, AuditEvent)]
            lost = [r for r in results if isinstance(r, StageBusy)]
            assert len(won) == 1 and len(lost) == 1, results
            assert lost[0].intent == won[0]
            await a.append(outcome(won[0]))
        assert await a.open_intents() == []
        assert (await a.verify()).count == 60
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_locks_are_rebuilt_from_the_log_when_a_version_1_store_is_upgraded(
    pg_env: Cluster, tmp_path: Path
) -> None:
    schema = new_schema()
    old = make_store(pg_env, schema, tmp_path)
    held = await old.append(intent(after="v2"))
    done = await old.append(intent(stage="staging"))
    await old.append(outcome(done))
    also = await old.append(intent(model="ranker"))
    await old.aclose()
    with pg_env.connect() as conn:  # back to what version 1 had
        for statement in (
            "DROP TRIGGER events_on_append ON {s}.events",
            "DROP FUNCTION {s}.on_append()",
            "DROP TABLE {s}.stage_locks",
            "DROP TABLE {s}.actors",
            "ALTER TABLE {s}.events DROP COLUMN db_user",
            "UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'",
        ):
            conn.execute(sql.SQL(statement).format(s=sql.Identifier(schema)))
    new = make_store(pg_env, schema, tmp_path)
    try:
        assert [e.seq for e in await new.open_intents()] == [held.seq, also.seq]
        with pytest.raises(StageBusy, match="intent seq 1"):
            await new.append(intent("bob"))
        await new.append(intent("bob", stage="staging"))
        with pg_env.connect() as conn:
            version = conn.execute(
                sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(
                    sql.Identifier(schema)
                )
            ).fetchone()
        assert version == (str(SCHEMA_VERSION),)
        assert (await new.verify()).ok
    finally:
        await new.aclose()


# --- people as database roles -------------------------------------------------------------


@dataclass
class Team:
    """A store created by the admin, and people's roles in its group."""

    cluster: Cluster
    schema: str
    group: str
    tag: str

    def role(self, person: str) -> str:
        return f"{person}_{self.tag}"

    def add(self, person: str, *, member: bool = True) -> str:
        role = self.role(person)
        with self.cluster.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(self.cluster.password)
                )
            )
            if member:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(self.group), sql.Identifier(role)
                    )
                )
        return role

    def store(self, person: str, tmp: Path) -> PostgresAuditStore:
        dsn = f"postgresql://{self.role(person)}@127.0.0.1:{self.cluster.port}/postgres"
        return make_store(self.cluster, self.schema, tmp, dsn=dsn)

    def admin(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.cluster.connect() as conn:
            cur = conn.execute(
                sql.SQL(statement).format(s=sql.Identifier(self.schema)), args or None
            )
            return cur.fetchall() if cur.description else []


@pytest.fixture
def team(pg_env: Cluster, capsys: pytest.CaptureFixture[str]) -> Iterator[Team]:
    """The admin's setup, exactly as docs/plugins/postgres.md says: the SQL printed by
    ``python -m cd4ml_console_postgres sql`` run as the owner."""
    tag = uuid.uuid4().hex[:8]
    schema, group = new_schema(), f"people_{tag}"
    with pg_env.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
    assert sql_main(["sql", "--schema", schema, "--group", group]) == 0
    script = capsys.readouterr().out
    with pg_env.connect() as conn:
        conn.execute(script.encode())
    yield Team(pg_env, schema, group, tag)


async def test_a_person_can_not_record_an_approval_in_anyone_elses_name(
    team: Team, tmp_path: Path
) -> None:
    alice, bob = team.add("alice"), team.add("bob")
    mine = team.store("alice", tmp_path)
    try:
        request = await mine.append(make_event(0, action="request", actor=alice))
        head = await mine.head()
        forged = make_event(1, action="approve", actor=bob, request_id=request.request_id)
        with pytest.raises(AuditUnavailable) as caught:
            await mine.append(forged)
        text = str(caught.value)
        assert (
            f"an event in the name of '{bob}' was refused: the database role is '{alice}'" in text
        )
        assert f"{team.schema}.actors" in caught.value.hint
        assert await mine.head() == head
    finally:
        await mine.aclose()
    # Nor by hand, bypassing the console: a correctly chained row is refused by the server.
    conn = psycopg.connect(
        f"postgresql://{alice}@127.0.0.1:{team.cluster.port}/postgres",
        password=team.cluster.password,
        autocommit=True,
    )
    with conn:
        stored, record = seal(forged, head[0] + 1, head[1])
        with pytest.raises(psycopg.Error) as raw:
            conn.execute(
                sql.SQL("INSERT INTO {}.events (seq, hash, record, model, request_id)"
                        " VALUES (%s, %s, %s, %s, %s)").format(sql.Identifier(team.schema)),
                (stored.seq, stored.hash, record, stored.model, stored.request_id),
            )  # fmt: skip
        assert raw.value.sqlstate == "C4A01"
        for statement in (
            "UPDATE {}.events SET db_user = 'x'",
            "DELETE FROM {}.stage_locks",
            "INSERT INTO {}.actors VALUES (session_user, '*')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL(statement).format(sql.Identifier(team.schema)))
    rows = team.admin("SELECT seq, db_user FROM {s}.events ORDER BY seq")
    assert rows == [(1, alice)]


async def test_the_connected_role_is_recorded_even_when_mapped_to_another_name(
    team: Team, tmp_path: Path
) -> None:
    dev = team.add("dev")
    team.admin("INSERT INTO {s}.actors VALUES (%s, 'dev.patel')", dev)
    store = team.store("dev", tmp_path)
    try:
        await store.append(make_event(0, actor="dev.patel"))
        await store.append(make_event(1, actor=dev))
        with pytest.raises(AuditUnavailable, match="was refused"):
            await store.append(make_event(2, actor="alice"))
        assert [(e.seq, e.actor) for e in await store.events()] == [(1, "dev.patel"), (2, dev)]
    finally:
        await store.aclose()
    assert team.admin("SELECT db_user FROM {s}.events ORDER BY seq") == [(dev,), (dev,)]


async def test_team_check_names_missing_and_excess_grants_and_the_mapping(
    team: Team, tmp_path: Path
) -> None:
    carol = team.add("carol")
    store = team.store("carol", tmp_path)
    try:
        found = await store.team_check(carol)
        assert all(ok for ok, _ in found), found
        assert any(f"events by {carol} are accepted" in t for _, t in found)
        unmapped = await store.team_check("carol.smith")
        assert (False, f"events by carol.smith would be refused from role {carol}: connect as "
                f"role carol.smith, or an admin maps it: INSERT INTO {team.schema}.actors "
                f"VALUES ('{carol}', 'carol.smith')") in unmapped  # fmt: skip
        team.admin(f"GRANT UPDATE ON {{s}}.events TO {carol}")
        team.admin("ALTER TABLE {s}.events DISABLE TRIGGER events_on_append")
        texts = [t for ok, t in await store.team_check(carol) if not ok]
        assert any(f"holds UPDATE on {team.schema}.events" in t for t in texts), texts
        assert any("events_on_append" in t and "is disabled" in t for t in texts), texts
    finally:
        await store.aclose()
    dave = team.add("dave", member=False)  # no grants at all
    lonely = team.store("dave", tmp_path)
    try:
        texts = [t for ok, t in await lonely.team_check(dave) if not ok]
        assert texts == [f"role {dave} lacks USAGE on schema {team.schema}: an admin runs the "
                         "grants of docs/plugins/postgres.md for it"]  # fmt: skip
        team.admin(f"GRANT USAGE ON SCHEMA {{s}} TO {dave}")
        texts = [t for ok, t in await lonely.team_check(dave) if not ok]
        lacks = f"role {dave} lacks SELECT on {team.schema}.events, INSERT on {team.schema}.events"
        assert any(t.startswith(lacks) for t in texts), texts
        with pytest.raises(AuditUnavailable, match="permission denied") as caught:
            await lonely.append(make_event(0, actor=dave))
        assert "an admin creates the store and grants this role" in caught.value.hint
    finally:
        await lonely.aclose()


async def test_a_person_can_not_create_or_upgrade_the_store(team: Team, tmp_path: Path) -> None:
    team.add("erin")
    missing = make_store(
        team.cluster, new_schema(), tmp_path,
        dsn=f"postgresql://{team.role('erin')}@127.0.0.1:{team.cluster.port}/postgres",
    )  # fmt: skip
    try:
        with pytest.raises(AuditUnavailable, match=r"does not exist and .* can not create it"):
            await missing.head()
    finally:
        await missing.aclose()
    team.admin("UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'")
    old = team.store("erin", tmp_path)
    try:
        with pytest.raises(AuditUnavailable, match="only its owner can upgrade it to 2") as c:
            await old.head()
        assert "python -m cd4ml_console_postgres sql" in c.value.hint
    finally:
        await old.aclose()


def test_the_grants_are_what_the_docs_show() -> None:
    text = "\n".join(s.as_string(None) for s in grants("cd4ml_audit", "cd4ml_people"))
    docs = Path(__file__).parents[3] / "docs" / "plugins" / "postgres.md"
    for line in text.splitlines():
        assert line.replace('"', "") + ";" in docs.read_text(encoding="utf-8")


async def test_doctor_reports_missing_grants_and_the_role_mapping(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.cli.doctor import run_doctor
    from console.config import parse_config
    from console.domain import Actor

    frank = team.add("frank", member=False)
    monkeypatch.setattr("console.identity.current_actor", lambda *a, **k: Actor(user=frank))
    config = parse_config(
        f'[backends.audit]\ntype = "postgres"\nschema = "{team.schema}"\n'
        f'dsn = "postgresql://{frank}@127.0.0.1:{team.cluster.port}/postgres"\n'
        f'token_env = "{PASSWORD_ENV}"\nuse_keyring = false\n',
        None,
    )
    assert await run_doctor(config) == 1
    out = capsys.readouterr().out
    assert f"FAIL team                     role {frank} lacks USAGE on schema {team.schema}" in out
    team.admin(f"GRANT {team.group} TO {frank}")
    await run_doctor(config)
    team_lines = [x for x in capsys.readouterr().out.splitlines() if " team " in x]
    assert team_lines == [
        "ok   team                     trigger events_on_append: the server checks every "
        "event's actor",
        f"ok   team                     role {frank}: reads the log, appends events, nothing more",
        f"ok   team                     events by {frank} are accepted from role {frank}",
    ]
