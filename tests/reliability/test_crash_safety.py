"""Crash safety of the audit log and of the release actions around it.

- A process appending audit events is killed with SIGKILL at random points 200 times (in a
  single-threaded driver process that forks the appenders): every event whose append returned
  is still there with its hash, no record is torn, the chain verifies, and `audit verify`
  passes on the result.
- The Nth write (the INSERT) or the Nth fsync (the COMMIT) of the audit store fails, once or
  from then on, for every N from 1 to past the last write of a release scenario (promote to
  staging; request, approve and execute production with a deploy), and the disk fills up:
  the action fails, nothing acknowledged is lost, and no registry move or deploy happens
  without its committed intent record.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from console.backends.sqlite_audit import SqliteAuditStore, verify_database
from console.config import load_config
from console.domain import Actor, AuditEvent
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig
from console.services.release import ReleaseService
from console.services.release.results import Refused, ReleaseError
from console.services.workspace import open_workspace
from tests.release.conftest import git_env, make_workspace

from .conftest import LONG

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ROUNDS = 1000 if LONG else 200
LAST_N = 50


# -- SIGKILL ---------------------------------------------------------------------------------


def test_appends_survive_sigkill_200_times_and_audit_verify_passes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = git_env({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})  # fmt: skip
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "i"],
                   check=True, env=env)  # fmt: skip
    db = repo / ".cd4ml" / "audit.sqlite"
    done = subprocess.run(
        [sys.executable, str(HERE / "crash_driver.py"), str(db), str(ROUNDS), "7"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["problems"] == [], report["problems"]
    assert report["rounds"] == ROUNDS
    assert report["rounds_with_appends"] >= ROUNDS // 2, "kills should land among appends"
    assert report["acked"] >= ROUNDS
    from console.cli.group import cli

    result = CliRunner().invoke(cli, ["-w", str(repo), "audit", "verify"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok: {report['max_seq']} records") or result.stdout.startswith(
        "ok: "
    ), result.stdout


# -- failing writes ---------------------------------------------------------------------------


class Flaky:
    """A sqlite3 connection whose Nth INSERT of a record (``write``) or COMMIT (``fsync``)
    fails with an I/O error, once or from then on; everything else passes through."""

    def __init__(self, conn: sqlite3.Connection, flavour: str, n: int, always: bool) -> None:
        self._conn, self.flavour, self.n, self.always = conn, flavour, n, always
        self.seen = 0
        self.fired = 0

    def execute(self, sql: str, *args: Any) -> Any:
        verb = sql.lstrip().split(None, 1)[0].upper()
        record = verb != "INSERT" or "INTO events" in sql  # not the stage lock's own row
        if verb == {"write": "INSERT", "fsync": "COMMIT"}[self.flavour] and record:
            self.seen += 1
            if self.seen == self.n or (self.always and self.seen > self.n):
                self.fired += 1
                exc = sqlite3.OperationalError("disk I/O error")
                exc.sqlite_errorname = "SQLITE_IOERR_FSYNC"  # type: ignore[attr-defined]
                raise exc
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


EXTRA = f"""
[backends.deploy]
type = "command-deploy"
command = ["{sys.executable}", "-c", "import sys; open('deploys.log', 'a').write(' '.join(sys.argv[1:]) + chr(10))", "{{model}}", "{{version}}", "{{stage}}"]
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("crash") / "ws", extra=EXTRA).path


@dataclass
class Run:
    acked: list[AuditEvent] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    fired: int = 0


STEPS = (
    ("dev", "promote", ("m", "v1.1.0", "staging")),
    ("dev", "promote", ("m", "v1.1.0", "production")),
    ("rita", "approve", ("m", "v1.1.0", "production")),
)


async def _scenario(ws_path: Path, fault: Any) -> Run:
    config = load_config(None, ws_path)
    run = Run()
    async with open_workspace(config) as ws:
        store: SqliteAuditStore = ws.backends["audit"]
        await store.head()  # opened (and created) before any fault
        flaky = fault(store._conn) if fault is not None else None
        if flaky is not None:
            store._conn = flaky
        real_append = store.append

        async def append(event: AuditEvent) -> AuditEvent:
            stored = await real_append(event)
            run.acked.append(stored)
            return stored

        store.append = append  # type: ignore[method-assign]
        for user, verb, (model, version, stage) in STEPS:
            svc = ReleaseService(ws, identity=lambda u=user: Actor(user=u))
            try:
                if verb == "promote":
                    res = await svc.promote(model, version, stage, reason="ship")
                else:
                    res = await svc.approve(model, version, stage, comment="ok")
                lost = "could not record" in res.message
                run.results.append(f"{res.status} (unrecorded)" if lost else res.status)
            except (ReleaseError, Refused) as exc:
                assert "Traceback" not in exc.message
                run.results.append(f"error: {exc.message}")
        run.fired = getattr(flaky, "fired", 0)
    return run


def _check(ws_path: Path, run: Run) -> list[AuditEvent]:
    """Nothing acknowledged is lost; the chain verifies; no move or deploy without intent."""
    db = ws_path / ".cd4ml" / "audit.sqlite"
    with sqlite3.connect(db) as conn:
        assert verify_database(conn).ok
    ctx = BackendContext(workspace=ws_path, state_dir=ws_path / ".cd4ml", config=None)
    store = SqliteAuditStore(SqliteAuditConfig(path=str(db)), ctx)

    events = asyncio.run(store.events())
    asyncio.run(store.aclose())
    stored = {e.seq: e.hash for e in events}
    lost = [e.seq for e in run.acked if stored.get(e.seq) != e.hash]
    assert lost == [], f"acknowledged events lost: {lost}"
    intents = [e for e in events if e.action == "intent"]
    moves = subprocess.run(["git", "-C", str(ws_path), "tag", "--list", "m#*"],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    for tag in moves:
        if tag == "m#production#1":  # the template's own
            continue
        stage = tag.split("#")[1]
        assert any(i.stage == stage and i.details.get("op") in ("promote", "rollback")
                   for i in intents), f"{tag} moved without an intent record"  # fmt: skip
    log = ws_path / "deploys.log"
    for line in log.read_text().splitlines() if log.exists() else []:
        model, version, stage = line.split()
        assert any(i.details.get("op") == "deploy" and (i.model, i.version, i.stage) ==
                   (model, version, stage) for i in intents), f"deploy {line} without intent"  # fmt: skip
    return events


@pytest.fixture(scope="module")
def clean_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, int, int]:
    """The scenario without faults: how many INSERTs and COMMITs it makes."""

    ws = shutil.copytree(template, tmp_path_factory.mktemp("clean") / "ws")
    counter: dict[str, Flaky] = {}

    def count(conn: sqlite3.Connection) -> Flaky:
        counter["f"] = Flaky(conn, "write", 10**9, False)
        return counter["f"]

    run = asyncio.run(_scenario(ws, count))
    assert counter["f"].seen == len(run.acked)
    assert run.results == ["executed", "requested", "executed"], run.results
    inserts = len(run.acked)
    _check(ws, run)
    return run, inserts, inserts  # one COMMIT per INSERT: appends are one transaction each


@pytest.mark.parametrize("always", [False, True], ids=["once", "always"])
@pytest.mark.parametrize("flavour", ["write", "fsync"])
async def test_the_nth_write_or_fsync_fails(
    template: Path, tmp_path: Path, clean_run: tuple[Run, int, int], flavour: str, always: bool
) -> None:
    _, inserts, commits = clean_run
    total = inserts if flavour == "write" else commits
    assert total < LAST_N, "the scenario must have fewer writes than the last N tried"
    # N beyond the scenario's last write is the clean run again: tried once, as N = total + 1.
    for n in range(1, min(total + 1, LAST_N) + 1):
        ws = shutil.copytree(template, tmp_path / f"n{n}")
        run = await _scenario(ws, lambda c, n=n: Flaky(c, flavour, n, always))

        events = await asyncio.to_thread(_check, ws, run)
        if n > total:
            assert run.fired == 0 and run.results == ["executed", "requested", "executed"]
            continue
        assert run.fired >= 1, f"N={n}: the fault never fired"
        failed = [r for r in run.results if r not in ("executed", "requested")]
        assert failed, f"N={n}: every action reported success although a write failed: {run}"
        # and no write that failed shows up as done: the log is exactly what was acknowledged
        assert {e.seq for e in events} == {e.seq for e in run.acked}


async def test_a_full_disk_fails_the_action_and_loses_nothing(
    template: Path, tmp_path: Path
) -> None:
    ws = shutil.copytree(template, tmp_path / "ws")

    def full(conn: sqlite3.Connection) -> sqlite3.Connection:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        return conn

    run = await _scenario(ws, full)

    await asyncio.to_thread(_check, ws, run)
    errors = [r for r in run.results if r.startswith("error")]
    assert errors, run.results
    assert any("disk is full" in e for e in errors), errors
    assert any("nothing was changed" in e or "nothing changed" in e for e in errors), errors
