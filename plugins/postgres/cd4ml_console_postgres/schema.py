"""The tables of the PostgreSQL audit store and their creation. Same columns as the SQLite
store: the canonical record bytes, their hash, and two copies of fields used for lookups."""

from __future__ import annotations

import hashlib

from psycopg import AsyncConnection, sql

from console.audit.chain import FORMAT

SCHEMA_VERSION = 1

_DDL = (
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


def lock_key(schema: str, purpose: str) -> int:
    """A signed 64-bit advisory lock key for ``purpose`` on ``schema`` (same in every process)."""
    digest = hashlib.sha256(f"cd4ml-console/audit/{schema}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def ddl(schema: str) -> list[sql.Composed]:
    """The statements creating the store in ``schema`` (idempotent); docs show them for DBAs."""
    ident = sql.Identifier(schema)
    return [sql.SQL(text).format(schema=ident) for text in _DDL]


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
    """Create the store in one transaction, serialised with other consoles doing the same."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "migrate"),))
        if await stored_version(conn, schema) is not None:
            return
        for statement in ddl(schema):
            await conn.execute(statement)
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.meta (key, value) VALUES ('schema_version', %s),"
                " ('chain_format', %s) ON CONFLICT (key) DO NOTHING"
            ).format(sql.Identifier(schema)),
            (str(SCHEMA_VERSION), FORMAT),
        )
