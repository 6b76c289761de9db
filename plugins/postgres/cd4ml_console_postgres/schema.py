"""The tables of the PostgreSQL audit store, their creation and their migrations.

Version 1: the canonical record bytes, their hash, and copies of two fields used for lookups
(the same columns as the SQLite store). Version 2 (the team store, docs/team.md): every row
records the connected role (``db_user``, set by the server), an event whose actor is not that
role is refused by the server (``actors`` maps other names), and the per-stage intent lock
is kept in ``stage_locks`` by the same trigger, in the append's transaction.
"""

from __future__ import annotations

import hashlib

from psycopg import AsyncConnection, sql

from console.plugins.audit import FORMAT

SCHEMA_VERSION = 2
BUSY = "C4B01"
"""SQLSTATE the append trigger raises when the stage's intent lock is held (DETAIL: its seq)."""
FORGED = "C4A01"
"""SQLSTATE the append trigger raises for an event in another role's name."""
ANY_ACTOR = "*"
TRIGGER = "events_on_append"

_V1 = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    "CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text NOT NULL)",
    # seq is assigned by the chain (no sequence): a gap or a duplicate is damage, not luck.
    "CREATE TABLE IF NOT EXISTS {schema}.events ("
    " seq bigint PRIMARY KEY CHECK (seq > 0), hash text NOT NULL, record bytea NOT NULL,"
    " model text NOT NULL, request_id text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_model ON {schema}.events (model, seq)",
    "CREATE INDEX IF NOT EXISTS events_by_request ON {schema}.events (request_id, seq)",
    "CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN RAISE EXCEPTION 'the audit log is append-only'; END$$",
    "CREATE OR REPLACE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events"
    " FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change()",
    "CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events"
    " FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change()",
)

# The append trigger runs as the table owner (SECURITY DEFINER), so a person's role needs no
# right on stage_locks or actors beyond reading them, and can not touch the lock by hand.
_ON_APPEND = """
CREATE OR REPLACE FUNCTION {schema}.on_append() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  rec jsonb := convert_from(NEW.record, 'UTF8')::jsonb;
  who text := rec->>'actor';
  holder bigint;
BEGIN
  NEW.db_user := session_user;
  IF who IS DISTINCT FROM session_user::text AND NOT EXISTS (
      SELECT 1 FROM {schema}.actors a
       WHERE a.db_role = session_user::text AND a.actor IN (who, '*')) THEN
    RAISE EXCEPTION USING ERRCODE = 'C4A01',
      MESSAGE = format('an event in the name of %s was refused: the database role is %s',
                       quote_literal(who), quote_literal(session_user::text)),
      HINT = 'each person connects as their own role; an admin maps other names in '
             || '{schema_text}.actors (docs/plugins/postgres.md)';
  END IF;
  IF rec->>'action' = 'intent' AND rec->'details'->'lock' = 'true'::jsonb THEN
    SELECT l.intent_seq INTO holder FROM {schema}.stage_locks l
     WHERE l.model = rec->>'model' AND l.stage = rec->>'stage';
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'C4B01', MESSAGE = 'the stage is busy',
        DETAIL = holder::text;
    END IF;
    INSERT INTO {schema}.stage_locks (model, stage, intent_seq)
      VALUES (rec->>'model', rec->>'stage', NEW.seq);
  ELSIF rec->>'action' = 'outcome' AND jsonb_typeof(rec->'details'->'intent_seq') = 'number'
  THEN
    DELETE FROM {schema}.stage_locks
     WHERE intent_seq = (rec->'details'->>'intent_seq')::numeric;
  END IF;
  RETURN NEW;
END $$
"""

# Open locking intents as the log says: the oldest per stage holds the lock (before version 2
# nothing enforced one holder, so a stage may show two; the newer is still named by
# reconciliation, which reads the log itself).
_REBUILD = """
WITH r AS (SELECT seq, convert_from(record, 'UTF8')::jsonb AS j FROM {schema}.events),
closed AS (SELECT (j->'details'->>'intent_seq')::numeric AS seq FROM r
            WHERE j->>'action' = 'outcome' AND jsonb_typeof(j->'details'->'intent_seq') = 'number')
INSERT INTO {schema}.stage_locks (model, stage, intent_seq)
SELECT DISTINCT ON (j->>'model', j->>'stage') j->>'model', j->>'stage', seq FROM r
 WHERE j->>'action' = 'intent' AND j->'details'->'lock' = 'true'::jsonb
   AND seq NOT IN (SELECT c.seq FROM closed c WHERE c.seq IS NOT NULL)
 ORDER BY j->>'model', j->>'stage', seq
"""

_V2 = (
    "ALTER TABLE {schema}.events ADD COLUMN IF NOT EXISTS db_user text",
    "CREATE TABLE IF NOT EXISTS {schema}.stage_locks (model text NOT NULL, stage text NOT NULL,"
    " intent_seq bigint NOT NULL UNIQUE, PRIMARY KEY (model, stage))",
    "CREATE TABLE IF NOT EXISTS {schema}.actors (db_role text NOT NULL, actor text NOT NULL,"
    " PRIMARY KEY (db_role, actor))",
    # The owner (the admin who created the store) may record any name: it can disable the
    # triggers anyway. Service roles get the same with ('role', '*').
    "INSERT INTO {schema}.actors VALUES (current_user, '*') ON CONFLICT DO NOTHING",
    _ON_APPEND,
    "CREATE OR REPLACE TRIGGER events_on_append BEFORE INSERT ON {schema}.events"
    " FOR EACH ROW EXECUTE FUNCTION {schema}.on_append()",
    "DELETE FROM {schema}.stage_locks",
    _REBUILD,
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V2}
"""Statements taking schema version N to N+1."""


def lock_key(schema: str, purpose: str) -> int:
    """A signed 64-bit advisory lock key for ``purpose`` on ``schema`` (same in every process)."""
    digest = hashlib.sha256(f"cd4ml-console/audit/{schema}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _compose(schema: str, statements: tuple[str, ...]) -> list[sql.Composed]:
    ident = sql.Identifier(schema)
    out = []
    for statement in statements:
        # {schema_text} sits inside a plpgsql string literal: the bare name, quotes doubled.
        raw = statement.replace("{schema_text}", schema.replace("'", "''"))
        out.append(sql.SQL(raw).format(schema=ident))
    return out


def ddl(schema: str) -> list[sql.Composed]:
    """The statements creating the store in ``schema`` at the current version (idempotent)."""
    steps = [s for v in range(1, SCHEMA_VERSION) for s in MIGRATIONS[v]]
    return _compose(schema, (*_V1, *steps))


def migration(schema: str, version: int) -> list[sql.Composed]:
    """The statements taking ``schema`` from ``version`` to the current version."""
    steps = [s for v in range(version, SCHEMA_VERSION) for s in MIGRATIONS[v]]
    return _compose(schema, tuple(steps))


def grants(schema: str, group: str) -> list[sql.Composed]:
    """What the people's group role needs: read everything, append events, nothing else."""
    statements = (
        "GRANT USAGE ON SCHEMA {schema} TO {group}",
        "GRANT SELECT ON {schema}.meta, {schema}.events, {schema}.stage_locks, {schema}.actors"
        " TO {group}",
        "GRANT INSERT ON {schema}.events TO {group}",
    )
    ident, role = sql.Identifier(schema), sql.Identifier(group)
    return [sql.SQL(s).format(schema=ident, group=role) for s in statements]


def _version_rows(schema: str) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {}.meta (key, value) VALUES ('schema_version', %s), ('chain_format', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    ).format(sql.Identifier(schema))


async def stored_version(conn: AsyncConnection, schema: str) -> int | None:
    """The schema version recorded in ``schema``.meta; None when the store does not exist."""
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    query = sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(
        sql.Identifier(schema)
    )
    row = await (await conn.execute(query)).fetchone()
    return int(row[0]) if row else None


async def create(conn: AsyncConnection, schema: str) -> None:
    """Create the store, or bring an older one up to date (rebuilding the intent locks from
    the log), in one transaction serialised with other consoles doing the same."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "migrate"),))
        # Appends wait while the locks are rebuilt, so none is missed between the two.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "append"),))
        version = await stored_version(conn, schema)
        if version is not None and version >= SCHEMA_VERSION:
            return
        steps = ddl(schema) if version is None else migration(schema, version)
        for statement in steps:
            await conn.execute(statement)
        await conn.execute(_version_rows(schema), (str(SCHEMA_VERSION), FORMAT))


def script(schema: str, group: str) -> str:
    """The whole SQL an admin runs (``python -m cd4ml_console_postgres sql``): the store at
    the current version, then the grants of the people's group role."""
    lines = [f"-- cd4ml-console audit store, schema version {SCHEMA_VERSION}", "BEGIN;"]
    lines += [s.as_string(None) + ";" for s in ddl(schema)]
    version = f"'{SCHEMA_VERSION}'"
    lines.append(
        sql.SQL(
            "INSERT INTO {}.meta (key, value) VALUES ('schema_version', {}), ('chain_format', {})"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;"
        )
        .format(sql.Identifier(schema), sql.SQL(version), sql.Literal(FORMAT))
        .as_string(None)
    )
    lines += [s.as_string(None) + ";" for s in grants(schema, group)]
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"
