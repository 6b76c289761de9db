"""Tampering, seen through the CLI: `cd4ml-console audit verify` (and `--json`) exits 1 and names
the first bad seq for every kind of damage (tests/audit/test_tamper.py checks every single-byte
flip of every column at the store level; here one flip per record goes through the CLI), and
exits 0 on the untouched log."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.audit import advance_anchor, seal
from console.backends.sqlite_audit import SqliteAuditStore
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig
from tests.audit.audit_helpers import make_event
from tests.release.conftest import git_env

pytestmark = pytest.mark.xdist_group("reliability-tamper")
N = 12


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("tamper") / "repo"
    env = git_env({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})  # fmt: skip
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "i"],
                   check=True, env=env)  # fmt: skip

    async def build() -> None:
        ctx = BackendContext(workspace=repo, state_dir=repo / ".cd4ml", config=None)
        store = SqliteAuditStore(SqliteAuditConfig(), ctx)
        for i in range(N):
            await store.append(make_event(i))
            await advance_anchor(repo, store)  # one anchor per append, as the console does
        await store.aclose()

    asyncio.run(build())
    return repo


def _conn(repo: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(repo / ".cd4ml" / "audit.sqlite", isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    return conn


def _row(conn: sqlite3.Connection, seq: int) -> tuple:
    return conn.execute("SELECT seq, hash, record, model, request_id FROM events WHERE seq = ?",
                        (seq,)).fetchone()  # fmt: skip


def _insert(conn: sqlite3.Connection, row: tuple) -> None:
    conn.execute("INSERT INTO events (seq, hash, record, model, request_id) VALUES (?,?,?,?,?)",
                 row)  # fmt: skip


def _shift(conn: sqlite3.Connection, after: int) -> None:
    conn.execute("UPDATE events SET seq = -(seq + 1) WHERE seq > ?", (after,))
    conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")


def flip(seq: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        record = _row(c, seq)[2]
        i = len(record) // 2
        c.execute("UPDATE events SET record = ? WHERE seq = ?",
                  (record[:i] + bytes([record[i] ^ 1]) + record[i + 1 :], seq))  # fmt: skip
        return seq

    return go


def delete(seq: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        c.execute("DELETE FROM events WHERE seq = ?", (seq,))
        return seq

    return go


def swap(a: int, b: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        ra, rb = _row(c, a), _row(c, b)
        c.execute("DELETE FROM events WHERE seq IN (?, ?)", (a, b))
        _insert(c, (a, *rb[1:]))
        _insert(c, (b, *ra[1:]))
        return a

    return go


def duplicate(seq: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        row = _row(c, seq)
        _shift(c, seq)
        _insert(c, (seq + 1, *row[1:]))
        return seq + 1

    return go


def insert(after: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        prev = _row(c, after)[1] if after else ""
        forged, record = seal(make_event(77, reason="forged"), after + 1, prev)
        _shift(c, after)
        _insert(c, (after + 1, forged.hash, record, forged.model, forged.request_id))
        return after + 1  # it links up, but the anchor of count after+1 names another hash

    return go


def rewrite(start: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        prev = _row(c, start - 1)[1] if start > 1 else ""
        for seq in range(start, N + 1):
            event, record = seal(make_event(seq - 1, reason="rewritten"), seq, prev)
            c.execute("DELETE FROM events WHERE seq = ?", (seq,))
            _insert(c, (seq, event.hash, record, event.model, event.request_id))
            prev = event.hash
        return start

    return go


def drop_newest(n: int) -> Callable[[sqlite3.Connection], int]:
    def go(c: sqlite3.Connection) -> int:
        c.execute("DELETE FROM events WHERE seq > ?", (N - n,))
        return N - n + 1

    return go


CASES: dict[str, Callable[[sqlite3.Connection], int]] = {
    **{f"flip-{s}": flip(s) for s in range(1, N + 1)},
    **{f"delete-{s}": delete(s) for s in range(1, N + 1)},
    **{f"swap-{a}-{b}": swap(a, b) for a, b in [(1, 2), (1, N), (3, 4), (5, 9), (N - 1, N)]},
    **{f"duplicate-{s}": duplicate(s) for s in range(1, N + 1)},
    **{f"insert-after-{s}": insert(s) for s in range(0, N)},
    **{f"rewrite-from-{s}": rewrite(s) for s in (1, 6, N)},
    **{f"drop-newest-{n}": drop_newest(n) for n in range(1, 6)},
}


def _verify(repo: Path, *extra: str) -> tuple[int, str]:
    from console.cli.group import cli

    result = CliRunner().invoke(cli, ["-w", str(repo), "audit", "verify", *extra])
    return result.exit_code, result.stdout + result.stderr


def test_the_untouched_log_verifies(template: Path) -> None:
    code, out = _verify(template)
    assert code == 0 and out.startswith(f"ok: {N} records"), out


@pytest.mark.parametrize("case", list(CASES))
def test_audit_verify_exits_1_naming_the_first_bad_seq(
    template: Path, tmp_path: Path, case: str
) -> None:
    repo = shutil.copytree(template, tmp_path / "repo")
    conn = _conn(repo)
    try:
        bad = CASES[case](conn)
    finally:
        conn.close()
    code, out = _verify(repo)
    assert code == 1, out
    assert f"first bad record is seq {bad} " in out, out
    if case.split("-")[0] in ("flip", "drop"):  # and the JSON form says the same
        code, out = _verify(repo, "--json")
        doc = json.loads(out)
        assert code == 1 and doc["ok"] is False and doc["first_bad_seq"] == bad, doc
