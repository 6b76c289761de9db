"""The embedded audit store: an append-only, hash-chained SQLite file (docs/audit.md).

Each row keeps the event's canonical encoding as bytes, its hash, and copies of two fields
used for lookups; everything an event says is read back from the bytes. Appends are
serialised across processes with ``BEGIN IMMEDIATE`` and return only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from console.audit.locks import open_locks, released_intent, takes_lock
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.audit import (  # the kit every audit store builds on, as plugins do
    FORMAT,
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
from console.plugins.options import SqliteAuditConfig
from console.ports import AuditUnavailable, InvalidResponse, StageBusy

SCHEMA_VERSION = 2
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "sshfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ncpfs",
        "coda",
        "davfs",
        "fuse.davfs2",
        "fuse.s3fs",
        "fuse.rclone",
        "gfs2",
        "ocfs2",
    }
)
"""File systems on which SQLite's WAL (shared memory between processes) is not safe."""

_LOCKS = (
    # The per-stage intent lock (console.audit.locks): one row per open locking intent.
    "CREATE TABLE IF NOT EXISTS stage_locks (model TEXT NOT NULL, stage TEXT NOT NULL,"
    " intent_seq INTEGER NOT NULL UNIQUE, PRIMARY KEY (model, stage))",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # seq is the rowid: the chain assigns it, so no AUTOINCREMENT.
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, record BLOB NOT NULL,"
    " model TEXT NOT NULL, request_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_model ON events (model, seq)",
    "CREATE INDEX IF NOT EXISTS events_by_request ON events (request_id, seq)",
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    *_LOCKS,
)
_VERIFY_SQL = (
    "SELECT seq, CAST(hash AS BLOB), typeof(hash), CAST(record AS BLOB), typeof(record),"
    " CAST(model AS BLOB), typeof(model), CAST(request_id AS BLOB), typeof(request_id)"
    " FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
)
_REASONS = {  # primary SQLite result code -> (words in its message, reason, what to do)
    "SQLITE_FULL": ("is full", "the disk is full", "free space on the disk holding it"),
    "SQLITE_READONLY": ("readonly", "it is read-only", "make it and its folder writable"),
    "SQLITE_BUSY": ("is locked", "it is locked by another process", "retry; see `fuser FILE`"),
    "SQLITE_LOCKED": ("table is locked", "it is locked", "retry"),
    "SQLITE_CANTOPEN": ("unable to open", "it can not be opened", "check the folder is writable"),
    "SQLITE_IOERR": ("i/o error", "of a disk I/O error", "check the disk and the file system"),
    "SQLITE_PERM": ("access permission", "permission was denied", "make the file writable"),
    "SQLITE_CORRUPT": ("malformed", "the file is damaged", "keep it as evidence (docs/audit.md)"),
    "SQLITE_NOTADB": ("not a database", "it is not SQLite", "check backends.audit.path"),
}
# SQLite's lock bytes (os_unix.c): a shared lock is a read lock on SHARED_SIZE bytes here.
SHARED_FIRST, SHARED_SIZE = 0x40000000 + 2, 510
_NO_WAL_FILES = frozenset({"SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN", "SQLITE_READONLY"})
_T = TypeVar("_T")


def _rebuild_locks(conn: sqlite3.Connection) -> None:
    """Fill stage_locks from the records (schema 1 had none; the rule reads records only)."""
    rows = conn.execute("SELECT seq, hash, record FROM events ORDER BY seq").fetchall()
    events = [decode_record(rec, h) for _, h, rec in rows if isinstance(rec, bytes)]
    conn.execute("DELETE FROM stage_locks")
    conn.executemany(
        "INSERT INTO stage_locks (model, stage, intent_seq) VALUES (?, ?, ?)",
        [(m, st, ev.seq) for (m, st), ev in open_locks(events).items()],
    )


def _to_v2(conn: sqlite3.Connection) -> None:
    for statement in _LOCKS:
        conn.execute(statement)
    _rebuild_locks(conn)


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_v2}
"""What takes schema version N to N+1, inside the migration's transaction."""


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo an open transaction without hiding the error that caused it."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def writable(path: Path) -> bool:
    """Whether this user can write the log and create its -wal/-shm files beside it."""
    if not path.exists():
        return True
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _shared_lock(path: Path, timeout: float) -> int:
    """A read lock on SQLite's shared byte range of ``path``: while held, no writer can take
    the exclusive lock a checkpoint-and-delete of the WAL needs. Returns the fd holding it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise sqlite3.OperationalError("database is locked") from None
            time.sleep(0.02)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def filesystem_type(path: Path, table: str | None = None) -> str:
    """Type of the file system holding ``path`` (``nfs4``, ``ext4``, ...); "" when unknown.

    ``table`` is the text of /proc/self/mountinfo or /proc/mounts (read when None).
    """
    if table is None:
        for source in ("/proc/self/mountinfo", "/proc/mounts"):
            try:
                table = Path(source).read_text(errors="replace")
                break
            except OSError:
                continue
        else:
            return ""
    target = str(path.resolve())
    best, fstype = -1, ""
    for line in table.splitlines():
        fields = line.split()
        if " - " in line and len(fields) >= 7:  # mountinfo: ... MOUNTPOINT ... - FSTYPE SOURCE
            mount, kind = fields[4], fields[fields.index("-", 6) + 1]
        elif len(fields) >= 3:  # mounts: SOURCE MOUNTPOINT FSTYPE ...
            mount, kind = fields[1], fields[2]
        else:
            continue
        mount = _unescape(mount)
        inside = mount == "/" or target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best:
            best, fstype = len(mount), kind
    return fstype


def _as_text(raw: Any, kind: str) -> Any:
    """A TEXT column read as bytes: the str it holds, or the raw value when it is not text."""
    if kind == "text" and isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return raw


def _stored_records(conn: sqlite3.Connection, page: int) -> Iterator[StoredRecord]:
    """Every row in seq order, read in pages so a rollback-journal database is never held."""
    last: int | None = None
    while True:
        rows = conn.execute(_VERIFY_SQL, (-(2**63) if last is None else last, page)).fetchall()
        for seq, h, htype, rec, rtype, m, mtype, req, qtype in rows:
            yield StoredRecord(
                seq=seq,
                hash=_as_text(h, htype),
                record=rec,
                columns={"model": _as_text(m, mtype), "request_id": _as_text(req, qtype)},
                error="" if rtype == "blob" else f"the record column holds {rtype}, not bytes",
            )
        if len(rows) < page:
            return
        last = rows[-1][0]


def verify_database(
    conn: sqlite3.Connection, anchors: Sequence[Anchor] | None = None, *, page: int = 1000
) -> VerifyResult:
    """Verify every stored byte of the audit database open on ``conn`` (see verify_chain)."""
    return verify_chain(_stored_records(conn, page), anchors=anchors)


class SqliteAuditStore(ExportMixin):
    """Append-only, hash-chained audit log in one SQLite file (WAL, synchronous=FULL)."""

    name = "sqlite-audit"

    def __init__(self, config: SqliteAuditConfig, ctx: BackendContext) -> None:
        self.config = config
        path = Path(config.path).expanduser() if config.path else ctx.state_dir / "audit.sqlite"
        source = getattr(ctx.config, "source", None)  # relative to the config file's folder
        self.path = (
            path if path.is_absolute() else (source.parent if source else ctx.workspace) / path
        )
        self.timeout = max(ctx.timeout, 1.0)
        self.fs_type = ""
        self.journal_mode = ""
        self._conn: sqlite3.Connection | None = None
        self._snapshot_fd: int | None = None  # read-only without WAL files: the lock's fd
        self._lock = threading.Lock()

    # --- plumbing ---------------------------------------------------------------------

    def _unavailable(self, exc: sqlite3.Error, doing: str) -> AuditUnavailable:
        name = "_".join((getattr(exc, "sqlite_errorname", "") or "").split("_")[:2])
        if name not in _REASONS:
            text = str(exc).lower()
            name = next((k for k, (words, _, _) in _REASONS.items() if words in text), "")
        _, reason, hint = _REASONS.get(name, ("", "", ""))
        detail = f"because {reason} ({exc})" if reason else f"({exc})"
        return AuditUnavailable(
            f"can not {doing} the audit log {self.path} {detail}",
            backend=self.name,
            hint=hint.replace("FILE", str(self.path)) or "check backends.audit.path",
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            if self._snapshot_fd is None or not Path(f"{self.path}-wal").exists():
                return self._conn
            self._close()  # a writer came while this reader held the file: read its WAL now
        if not writable(self.path):
            conn = self._open_read_only()
            try:
                self._migrate(conn)  # refuses a newer schema; writes nothing when current
            except BaseException:
                self._close(conn)
                raise
            self._conn = conn
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditUnavailable(
                f"can not create the folder of the audit log {self.path}: {exc.strerror}",
                backend=self.name,
                hint="create it, or set backends.audit.path",
            ) from None
        self.fs_type = filesystem_type(self.path.parent)
        wanted = "delete" if self.fs_type in NETWORK_FS else "wal"
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = str(conn.execute(f"PRAGMA journal_mode={wanted}").fetchone()[0]).lower()
            if mode != wanted:
                raise AuditUnavailable(
                    f"the audit log {self.path} stays in journal mode {mode}, not {wanted}",
                    backend=self.name,
                    hint="close other programs using it and retry",
                )
            for pragma in ("synchronous=FULL", "fullfsync=ON", "checkpoint_fullfsync=ON"):
                conn.execute(f"PRAGMA {pragma}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self.journal_mode, self._conn = mode, conn
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """The log opened read-only, for a user who may read it but not write it or its
        folder. A WAL database needs its -wal and -shm files, which such a user can not create
        (SQLite docs, wal.html: read-only databases): when no writer left them, the file alone
        holds every record, read as immutable while a shared lock keeps writers from changing
        it; once a writer's -wal appears, the next read goes through it."""
        uri = f"file:{quote(str(self.path))}?mode=ro"
        for _ in range(2):
            conn = self._connect_uri(uri)
            try:
                self.journal_mode = (
                    str(conn.execute("PRAGMA journal_mode").fetchone()[0]) + " (read-only)"
                )
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if getattr(exc, "sqlite_errorname", "") not in _NO_WAL_FILES:
                    raise
            fd = _shared_lock(self.path, self.timeout)
            if Path(f"{self.path}-wal").exists():
                os.close(fd)  # a writer came meanwhile: its files are there to read through
                continue
            conn = self._connect_uri(uri + "&immutable=1")
            self._snapshot_fd = fd
            self.journal_mode = "wal (read-only, no writer)"
            return conn
        raise sqlite3.OperationalError("unable to open database file")

    def _connect_uri(self, uri: str) -> sqlite3.Connection:
        return sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )

    def _close(self, conn: sqlite3.Connection | None = None) -> None:
        """Close the connection (and let go of a read-only snapshot's lock)."""
        conn, self._conn = conn or self._conn, None
        if conn is not None:
            conn.close()
        fd, self._snapshot_fd = self._snapshot_fd, None
        if fd is not None:
            os.close(fd)

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except (TypeError, ValueError):
            raise AuditUnavailable(
                f"the audit log {self.path} has a damaged schema version {row[0]!r}",
                backend=self.name,
                hint="keep the file as evidence and start a new log (docs/audit.md)",
            ) from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or bring an older one up to date; refuse a newer one."""
        if self._schema_version(conn) == SCHEMA_VERSION:
            return  # the usual case: nothing to write, so a read-only copy opens too
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(conn)
            if version is not None and version > SCHEMA_VERSION:
                raise AuditUnavailable(
                    f"the audit log {self.path} has schema version {version}; this console "
                    f"reads up to {SCHEMA_VERSION}",
                    backend=self.name,
                    hint="upgrade cd4ml-console",
                )
            if version is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                version = SCHEMA_VERSION
            for step in range(version, SCHEMA_VERSION):
                _MIGRATIONS[step](conn)
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("chain_format", FORMAT)],
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _call(self, doing: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            try:
                return fn(self._connection())
            except sqlite3.Error as exc:
                raise self._unavailable(exc, doing) from None

    async def _run(self, doing: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.to_thread(self._call, doing, fn)

    # --- the port ---------------------------------------------------------------------

    async def check(self) -> str:
        """Open the file and say how it is kept; a network file system is called out."""
        count, _ = await self.head()
        where = f"{self.path}: {count} records, journal {self.journal_mode}, synchronous=FULL"
        if self.fs_type not in NETWORK_FS:
            return where
        if self.config.allow_network_fs:
            return f"{where} (on {self.fs_type}: WAL refused, allowed by allow_network_fs)"
        return (
            f"warning: {where} — the file is on {self.fs_type}, a network file system, so WAL "
            "is refused; several hosts sharing one SQLite file can still lose or damage "
            "records: use the postgres audit store (or set allow_network_fs = true)"
        )

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._close()

        await asyncio.to_thread(close)

    async def append(self, event: AuditEvent) -> AuditEvent:
        """Durably append ``event`` after the current head; returns it as stored."""

        def work(conn: sqlite3.Connection) -> AuditEvent:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT seq, hash, record FROM events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (0, "") if row is None else (row[0], row[1])
                if row is not None and not (
                    isinstance(row[2], bytes) and hash_bytes(row[2]) == prev
                ):
                    raise AuditUnavailable(
                        f"the newest record of {self.path} (seq {seq}) does not match its hash; "
                        "not extending a damaged log",
                        backend=self.name,
                        hint="run `cd4ml-console audit verify` (docs/audit.md: recovery)",
                    )
                stored, record = seal(event, seq + 1, prev)
                self._lock_or_release(conn, stored)
                conn.execute(
                    "INSERT INTO events (seq, hash, record, model, request_id) VALUES (?,?,?,?,?)",
                    (stored.seq, stored.hash, record, stored.model, stored.request_id),
                )
                conn.execute("COMMIT")
                return stored
            except BaseException:
                _rollback(conn)
                raise

        try:
            return await self._run("write", work)
        except EncodingError as exc:
            raise AuditUnavailable(
                f"the event can not be recorded: {exc}", backend=self.name
            ) from None

    def _lock_or_release(self, conn: sqlite3.Connection, event: AuditEvent) -> None:
        """The per-stage intent lock, in the append's transaction (console.audit.locks)."""
        if (seq := released_intent(event)) is not None:
            conn.execute("DELETE FROM stage_locks WHERE intent_seq = ?", (seq,))
        elif takes_lock(event):
            row = conn.execute(
                "SELECT e.seq, e.hash, e.record FROM stage_locks l JOIN events e"
                " ON e.seq = l.intent_seq WHERE l.model = ? AND l.stage = ?",
                (event.model, event.stage),
            ).fetchone()
            if row is not None:
                holder = self._decode(*row)
                raise StageBusy(
                    f"{event.stage} of {event.model} is being moved by {holder.actor} since "
                    f"{holder.at:%Y-%m-%d %H:%M:%S} UTC (intent seq {holder.seq}: "
                    f"{holder.details.get('op', 'move')} to {holder.after or 'nothing'})",
                    intent=holder,
                    backend=self.name,
                )
            conn.execute(
                "INSERT INTO stage_locks (model, stage, intent_seq) VALUES (?, ?, ?)",
                (event.model, event.stage, event.seq),
            )

    async def open_intents(self, *, model: str | None = None) -> Sequence[AuditEvent]:
        """Locking intents with no outcome yet, oldest first."""
        sql = (
            "SELECT e.seq, e.hash, e.record FROM stage_locks l JOIN events e"
            " ON e.seq = l.intent_seq"
            + (" WHERE l.model = ?" if model is not None else "")
            + " ORDER BY e.seq"
        )
        params = (model,) if model is not None else ()
        rows = await self._run("read", lambda conn: conn.execute(sql, params).fetchall())
        return [self._decode(*row) for row in rows]

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
        where: list[str] = ["seq > ?"]
        params: list[object] = [since_seq]
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if request_id is not None:
            where.append("request_id = ?")
            params.append(request_id)
        sql = (
            f"SELECT seq, hash, record FROM events WHERE {' AND '.join(where)}"
            f" ORDER BY seq {'DESC' if tail else 'ASC'} LIMIT ?"
        )
        params.append(-1 if limit is None else limit)
        rows = await self._run("read", lambda conn: conn.execute(sql, params).fetchall())
        out = [self._decode(seq, h, rec) for seq, h, rec in rows]
        return out[::-1] if tail else out

    def _decode(self, seq: int, hash_hex: Any, record: Any) -> AuditEvent:
        try:
            if not isinstance(record, bytes) or not isinstance(hash_hex, str):
                raise EncodingError("wrong column types")
            return decode_record(record, hash_hex)
        except (EncodingError, ValueError) as exc:
            raise InvalidResponse(
                f"audit record seq {seq} in {self.path} can not be read: {exc}",
                backend=self.name,
                hint="run `cd4ml-console audit verify`",
            ) from None

    async def head(self) -> tuple[int, str]:
        """(count, hash of the newest record); (0, "") when empty."""

        def work(conn: sqlite3.Connection) -> tuple[int, str]:
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            return (0, "") if row is None else (int(row[0]), str(row[1]))

        return await self._run("read", work)

    async def verify(self, anchors: Sequence[Anchor] | None = None) -> VerifyResult:
        """Check every stored byte of every record, the links, and the given anchors."""
        return await self._run("read", lambda conn: verify_database(conn, anchors))
