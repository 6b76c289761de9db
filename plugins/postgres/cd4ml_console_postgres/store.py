"""The ``postgres`` AuditStore: the hash chain of console.audit.chain kept in PostgreSQL.

Appends from every console on every host are serialised by a transaction-scoped advisory
lock, so the chain stays one line; an append returns only after its commit (with
``synchronous_commit = on`` forced for that transaction). Never retried: it is a mutation.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from cd4ml_console_postgres import PostgresAuditConfig
from cd4ml_console_postgres.schema import (
    ANY_ACTOR,
    BUSY,
    FORGED,
    SCHEMA_VERSION,
    TRIGGER,
    create,
    lock_key,
    stored_version,
)
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.audit import (
    Anchor,
    EncodingError,
    ExportMixin,
    StoredRecord,
    VerifyResult,
    decode_record,
    hash_bytes,
    seal,
    verify_chain,
)
from console.plugins.credentials import alookup, credential_name, require
from console.ports import AuditUnavailable, BackendError, InvalidResponse, StageBusy

_T = TypeVar("_T")
PAGE = 1000
READ_RETRIES = 3
RETRY_WITHIN = 10.0
BACKOFF = (0.25, 0.75, 2.0)
monotonic = time.monotonic


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection was lost or refused (worth another try)."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, psycopg.OperationalError) or "authentication failed" in str(exc):
        return False
    state = exc.sqlstate or ""
    return not state or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


class _Transient(Exception):
    """A failure a read may try again (the connection was lost or refused)."""

    def __init__(self, error: AuditUnavailable) -> None:
        super().__init__(error.message)
        self.error = error


_PRIVILEGES = (  # (table, privilege, needed): what a person's role must and must not hold
    ("events", "SELECT", True),
    ("events", "INSERT", True),
    ("meta", "SELECT", True),
    ("stage_locks", "SELECT", True),
    ("actors", "SELECT", True),
    ("events", "UPDATE", False),
    ("events", "DELETE", False),
    ("events", "TRUNCATE", False),
    ("stage_locks", "INSERT", False),
    ("stage_locks", "DELETE", False),
    ("actors", "INSERT", False),
    ("actors", "UPDATE", False),
)


async def team_findings(
    conn: AsyncConnection[Any], schema: str, actor: str
) -> list[tuple[bool, str]]:
    """The checks of ``PostgresAuditStore.team_check`` on an open connection."""
    row = await (
        await conn.execute(
            "SELECT session_user::text, n.nspowner::regrole::text, r.rolsuper"
            " FROM pg_namespace n, pg_roles r WHERE n.nspname = %s AND r.rolname = session_user",
            (schema,),
        )
    ).fetchone()
    if row is None:
        return [(False, f"schema {schema} does not exist: an admin creates it")]
    role, owner, superuser = str(row[0]), str(row[1]), bool(row[2])
    usage = await (
        await conn.execute("SELECT has_schema_privilege(session_user, %s, 'USAGE')", (schema,))
    ).fetchone()
    if not (usage and usage[0]):
        return [
            (
                False,
                f"role {role} lacks USAGE on schema {schema}: an admin runs the "
                "grants of docs/plugins/postgres.md for it",
            )
        ]
    out: list[tuple[bool, str]] = []
    trig = await (
        await conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (f"{schema}.events", TRIGGER),
        )
    ).fetchone()
    if trig is None or trig[0] == "D":
        state = "is missing" if trig is None else "is disabled"
        out.append(
            (
                False,
                f"trigger {TRIGGER} on {schema}.events {state}: actors are not "
                "checked and the intent lock is not kept (upgrade the store as its owner)",
            )
        )
    else:
        out.append((True, f"trigger {TRIGGER}: the server checks every event's actor"))
    privileged = superuser or role == owner
    missing: list[str] = []
    extra: list[str] = []
    if privileged:
        what = "a superuser" if superuser else f"the owner of {schema}"
        out.append(
            (
                True,
                f"connected as {role}, {what}: it can bypass the triggers — use a "
                "person's own role for everyday work",
            )
        )
    else:
        for table, privilege, needed in _PRIVILEGES:
            have = await (
                await conn.execute(
                    "SELECT has_table_privilege(session_user, %s, %s)",
                    (f"{schema}.{table}", privilege),
                )
            ).fetchone()
            if have is not None and bool(have[0]) != needed:
                (missing if needed else extra).append(f"{privilege} on {schema}.{table}")
        if missing:
            out.append(
                (
                    False,
                    f"role {role} lacks {', '.join(missing)}: an admin runs "
                    f"GRANT ... TO {role} (docs/plugins/postgres.md)",
                )
            )
        if extra:
            out.append(
                (
                    False,
                    f"role {role} holds {', '.join(extra)}: with it a person can "
                    "rewrite who did what; REVOKE it (docs/plugins/postgres.md)",
                )
            )
        if not missing and not extra:
            out.append((True, f"role {role}: reads the log, appends events, nothing more"))
    if not privileged and any(f"SELECT on {schema}.actors" in m for m in missing):
        return out  # who may write as whom can not be read without it
    mapped = await (
        await conn.execute(
            sql.SQL("SELECT actor FROM {} WHERE db_role = %s AND actor IN (%s, %s)").format(
                sql.Identifier(schema, "actors")
            ),
            (role, actor, ANY_ACTOR),
        )
    ).fetchall()
    names = {str(r[0]) for r in mapped}
    if ANY_ACTOR in names:
        out.append((True, f"role {role} may record events in any name (a service role)"))
    elif actor == role or actor in names:
        out.append((True, f"events by {actor} are accepted from role {role}"))
    else:
        out.append(
            (
                False,
                f"events by {actor} would be refused from role {role}: connect as "
                f"role {actor}, or an admin maps it: INSERT INTO {schema}.actors "
                f"VALUES ('{role}', '{actor}')",
            )
        )
    return out


def describe_dsn(dsn: str) -> str:
    """``user@host:port/dbname`` of a connection string: where, never a secret."""
    try:
        p = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid dsn>"
    user = f"{p['user']}@" if p.get("user") else ""
    host = str(p.get("host") or p.get("hostaddr") or "local socket")
    port = f":{p['port']}" if p.get("port") else ""
    return f"{user}{host}{port}/{p.get('dbname') or '(default db)'}"


class PostgresAuditStore(ExportMixin):
    """Append-only, hash-chained audit log in a PostgreSQL schema."""

    name = "postgres"

    def __init__(self, config: PostgresAuditConfig, ctx: BackendContext) -> None:
        self.config = config
        self.schema = config.schema_name
        self.where = f"{describe_dsn(config.dsn)} (schema {self.schema})"
        self.timeout = max(config.timeout_seconds or ctx.timeout, 1.0)
        self.server_version = ""
        self._conn: AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._events = sql.Identifier(self.schema, "events")
        self._append_key = lock_key(self.schema, "append")
        self._sent = ""  # the credential looked up for the connection, described

    # -- plumbing -----------------------------------------------------------------------

    def _unavailable(self, exc: BaseException, doing: str) -> AuditUnavailable:
        """A database failure as a sentence naming the database and what to do."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = first.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()  # libpq's reason
        hint = "is the database up and backends.audit.dsn right?"
        auth = psycopg.errors.InvalidPassword | psycopg.errors.InvalidAuthorizationSpecification
        state = getattr(exc, "sqlstate", None) or ""
        if state == FORGED and isinstance(exc, psycopg.Error):
            return AuditUnavailable(
                f"the audit log at {self.where} refused the event: {exc.diag.message_primary}",
                backend=self.name,
                hint=exc.diag.message_hint or "",
            )
        if isinstance(exc, auth) or "authentication failed" in first:
            sent = f" (sent {self._sent})" if self._sent else ""
            hint = f"check the password{sent}: `cd4ml-console login {self._credential_name}`"
        elif isinstance(exc, psycopg.errors.InsufficientPrivilege | psycopg.errors.UndefinedTable):
            hint = (
                f"an admin creates the store and grants this role SELECT on {self.schema}'s "
                f"tables and INSERT on {self.schema}.events (docs/plugins/postgres.md)"
            )
        elif isinstance(exc, psycopg.errors.LockNotAvailable):
            first = f"another console held the append lock for more than {self.timeout:g}s"
            hint = "retry; look for a stuck session in pg_stat_activity"
        elif isinstance(exc, psycopg.errors.QueryCanceled | TimeoutError):
            first = f"the database did not answer within {self.timeout:g}s"
            hint = "retry; check the database's load"
        elif isinstance(exc, psycopg.errors.RaiseException):
            hint = "the audit log is append-only"
        return AuditUnavailable(
            f"can not {doing} the audit log at {self.where}: {first}", backend=self.name, hint=hint
        )

    @property
    def _credential_name(self) -> str:
        return credential_name(self.config, self.name)

    async def _params(self) -> tuple[dict[str, Any], SecretStr | None]:
        """Connection keywords (no secret among them) and the password, if one is looked up."""
        ms = int(self.timeout * 1000)
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.timeout)),
            "application_name": "cd4ml-console",
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        }
        if self.config.auth != "password":
            return kwargs, None
        found = require(await alookup(self._credential_name, self.config, timeout=self.timeout))
        self._sent = found.describe()  # named when the server refuses it, never its value
        if found.username and "user" not in conninfo_to_dict(self.config.dsn):
            kwargs["user"] = found.username
        return kwargs, found.secret

    async def _connect(self) -> AsyncConnection[Any]:
        kwargs, password = await self._params()
        if password is not None:
            conn = await AsyncConnection.connect(
                self.config.dsn, password=password.get_secret_value(), **kwargs
            )
        else:
            conn = await AsyncConnection.connect(self.config.dsn, **kwargs)
        try:
            version = await stored_version(conn, self.schema)
            if version is None or version < SCHEMA_VERSION:
                await self._create(conn, version)
            elif version > SCHEMA_VERSION:
                raise AuditUnavailable(
                    f"the audit log at {self.where} has schema version {version}; this console "
                    f"reads up to {SCHEMA_VERSION}",
                    backend=self.name,
                    hint="upgrade cd4ml-console",
                )
            self.server_version = str(conn.info.parameter_status("server_version") or "")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _create(self, conn: AsyncConnection[Any], version: int | None) -> None:
        """Create the store, or upgrade it; only its owner (or a role allowed to create a
        schema) can, so anyone else is told who must."""
        try:
            await create(conn, self.schema)
        except psycopg.errors.InsufficientPrivilege as exc:
            what = (
                f"does not exist and {conn.info.user} can not create it"
                if version is None
                else f"has schema version {version} and only its owner can upgrade it to "
                f"{SCHEMA_VERSION}"
            )
            raise AuditUnavailable(
                f"the audit log at {self.where} {what} ({exc.diag.message_primary})",
                backend=self.name,
                hint="an admin runs `python -m cd4ml_console_postgres sql | psql ...` as the "
                "owner, or connects the console once as the owner (docs/plugins/postgres.md)",
            ) from None

    async def _run(self, doing: str, work: Callable[[AsyncConnection[Any]], Awaitable[_T]]) -> _T:
        """``work`` on the shared connection (one at a time), bounded by the timeout; any
        database failure becomes AuditUnavailable and drops the connection. A read that lost
        its connection is tried again (at most 3 times within 10 s); a write never is."""
        started = monotonic()
        for attempt in range(READ_RETRIES + 1):
            try:
                return await self._once(doing, work)
            except _Transient as transient:
                wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                late = monotonic() - started + wait > RETRY_WITHIN
                if doing != "read" or attempt == READ_RETRIES or late:
                    raise transient.error from None
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, doing: str, work: Callable[[AsyncConnection[Any]], Awaitable[_T]]) -> _T:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await asyncio.wait_for(self._connect(), self.timeout * 2)
                return await asyncio.wait_for(work(self._conn), self.timeout * 2)
            except (AuditUnavailable, InvalidResponse, StageBusy):
                raise
            except BackendError as exc:  # e.g. no credential: the log can not be used either
                await self._drop()
                raise AuditUnavailable(
                    f"can not {doing} the audit log at {self.where}: {exc.message}",
                    backend=self.name,
                    hint=exc.hint,
                ) from None
            except (psycopg.Error, TimeoutError, OSError) as exc:
                await self._drop()
                error = self._unavailable(exc, doing)
                raise (_Transient(error) if is_transient(exc) else error) from None

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    # -- the port -----------------------------------------------------------------------

    async def append(self, event: AuditEvent) -> AuditEvent:
        """Durably append ``event`` after the current head; returns it as stored."""

        async def work(conn: AsyncConnection[Any]) -> AuditEvent:
            try:
                return await self._append_once(conn, event)
            except psycopg.Error as exc:
                if exc.sqlstate != BUSY:
                    raise
                holder = int(exc.diag.message_detail or 0)
            raise await self._busy(conn, event, holder)

        try:
            return await self._run("write", work)
        except EncodingError as exc:
            raise AuditUnavailable(
                f"the event can not be recorded: {exc}", backend=self.name
            ) from None

    async def _append_once(self, conn: AsyncConnection[Any], event: AuditEvent) -> AuditEvent:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit TO on")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._append_key,))
            cur = await conn.execute(
                sql.SQL("SELECT seq, hash, record FROM {} ORDER BY seq DESC LIMIT 1").format(
                    self._events
                )
            )
            row = await cur.fetchone()
            seq, prev = (0, "") if row is None else (int(row[0]), str(row[1]))
            if row is not None and hash_bytes(bytes(row[2])) != prev:
                raise AuditUnavailable(
                    f"the newest record of the audit log at {self.where} (seq {seq}) does "
                    "not match its hash; not extending a damaged log",
                    backend=self.name,
                    hint="run `cd4ml-console audit verify` (docs/audit.md: recovery)",
                )
            stored, record = seal(event, seq + 1, prev)
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (seq, hash, record, model, request_id)"
                    " VALUES (%s, %s, %s, %s, %s)"
                ).format(self._events),
                (stored.seq, stored.hash, record, stored.model, stored.request_id),
            )
        return stored

    async def _busy(self, conn: AsyncConnection[Any], event: AuditEvent, holder: int) -> StageBusy:
        """StageBusy naming the open intent ``holder`` that keeps ``event`` from locking."""
        query = sql.SQL("SELECT seq, hash, record FROM {} WHERE seq = %s").format(self._events)
        row = await (await conn.execute(query, (holder,))).fetchone()
        if row is None:
            raise AuditUnavailable(
                f"the intent lock of {event.stage} of {event.model} names seq {holder}, which "
                f"is not in the audit log at {self.where}",
                backend=self.name,
                hint="run `cd4ml-console audit verify`",
            )
        intent = self._decode(*row)
        since = intent.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return StageBusy(
            f"{event.stage} of {event.model} is being moved by {intent.actor} since {since} "
            f"(intent seq {intent.seq}: {intent.before or 'nothing'} -> {intent.after or '?'}); "
            "nothing was recorded",
            intent=intent,
            backend=self.name,
            hint="wait for its outcome; an intent a crash left open is reconciled (docs/team.md)",
        )

    async def events(
        self,
        *,
        model: str | None = None,
        since_seq: int = 0,
        limit: int | None = None,
        request_id: str | None = None,
        tail: bool = False,
    ) -> Sequence[AuditEvent]:
        """Events with seq > ``since_seq`` in seq order, optionally of one model or request;
        with ``tail`` the newest ``limit`` of them (still oldest first)."""
        where = [sql.SQL("seq > %s")]
        params: list[Any] = [since_seq]
        if model is not None:
            where.append(sql.SQL("model = %s"))
            params.append(model)
        if request_id is not None:
            where.append(sql.SQL("request_id = %s"))
            params.append(request_id)
        query = sql.SQL(
            "SELECT seq, hash, record FROM {} WHERE {} ORDER BY seq {} LIMIT %s"
        ).format(self._events, sql.SQL(" AND ").join(where), sql.SQL("DESC" if tail else "ASC"))
        params.append(limit)

        async def work(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            return await (await conn.execute(query, params)).fetchall()

        rows = await self._run("read", work)
        out = [self._decode(seq, h, rec) for seq, h, rec in rows]
        return out[::-1] if tail else out

    def _decode(self, seq: int, hash_hex: Any, record: Any) -> AuditEvent:
        try:
            return decode_record(bytes(record), str(hash_hex))
        except (EncodingError, ValueError) as exc:
            raise InvalidResponse(
                f"audit record seq {seq} at {self.where} can not be read: {exc}",
                backend=self.name,
                hint="run `cd4ml-console audit verify`",
            ) from None

    async def head(self) -> tuple[int, str]:
        """(count, hash of the newest record); (0, "") when empty."""

        async def work(conn: AsyncConnection[Any]) -> tuple[int, str]:
            query = sql.SQL("SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1").format(
                self._events
            )
            row = await (await conn.execute(query)).fetchone()
            return (0, "") if row is None else (int(row[0]), str(row[1]))

        return await self._run("read", work)

    async def open_intents(self, *, model: str | None = None) -> Sequence[AuditEvent]:
        """Locking intents with no outcome yet (the stage_locks the server keeps), oldest first."""
        query = sql.SQL(
            "SELECT e.seq, e.hash, e.record FROM {locks} l JOIN {events} e ON e.seq = l.intent_seq"
            " WHERE %s::text IS NULL OR l.model = %s ORDER BY e.seq"
        ).format(locks=sql.Identifier(self.schema, "stage_locks"), events=self._events)

        async def work(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            return await (await conn.execute(query, (model, model))).fetchall()

        return [self._decode(*row) for row in await self._run("read", work)]

    async def team_check(self, actor: str) -> list[tuple[bool, str]]:
        """What a team store needs, as (ok, line): the trigger that checks actors and keeps the
        intent locks, this role's grants, and whether it may write as ``actor`` (doctor)."""

        kwargs, password = await self._params()
        try:  # a connection of its own: the store's would stop at the first missing grant
            if password is not None:
                kwargs["password"] = password.get_secret_value()
            conn = await asyncio.wait_for(
                AsyncConnection.connect(self.config.dsn, **kwargs), self.timeout * 2
            )
            async with conn:
                return await asyncio.wait_for(
                    team_findings(conn, self.schema, actor), self.timeout * 2
                )
        except (psycopg.Error, TimeoutError, OSError) as exc:
            error = self._unavailable(exc, "check")
            return [(False, f"{error.message} — {error.hint}")]

    async def verify(self, anchors: Sequence[Anchor] | None = None) -> VerifyResult:
        """Check every stored byte of every record, the links, and the given anchors; the log
        is streamed through a server-side cursor on a connection of its own."""
        await self.head()  # connects once on the shared connection: creates an empty store
        kwargs, password = await self._params()
        query = sql.SQL("SELECT seq, hash, record, model, request_id FROM {} ORDER BY seq").format(
            self._events
        )

        def work() -> VerifyResult:
            if password is not None:
                conn = psycopg.connect(
                    self.config.dsn, password=password.get_secret_value(), **kwargs
                )
            else:
                conn = psycopg.connect(self.config.dsn, **kwargs)
            with conn, conn.transaction(), conn.cursor(name="cd4ml_audit_verify") as cur:
                cur.itersize = PAGE
                cur.execute(query)
                records = (
                    StoredRecord(
                        seq=seq,
                        hash=h,
                        record=bytes(rec),
                        columns={"model": m, "request_id": req},
                    )
                    for seq, h, rec, m, req in cur
                )
                return verify_chain(records, anchors=anchors)

        try:
            return await asyncio.to_thread(work)
        except psycopg.Error as exc:
            raise self._unavailable(exc, "verify") from None

    async def check(self) -> str:
        """Connect, and say where the log is and how long it is."""
        count, _ = await self.head()
        return f"PostgreSQL {self.server_version} at {self.where}: {count} records"

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()

    def __repr__(self) -> str:
        return f"PostgresAuditStore({self.where!r})"
