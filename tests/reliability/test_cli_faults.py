"""Fault matrix through the CLI: `status`, `versions` and `doctor` exit non-zero and say what
is wrong in one line; release verbs exit 1 (a backend failed) or 3 (refused) and change
nothing they were not able to record; a deploy (a mutation) is sent exactly once."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from console.domain import Actor
from tests.release.conftest import make_workspace

from .faultserver import FaultServer
from .http_cases import TOKEN_ENV, github_good, scrape_good

# Wall-time bounds: `make test` runs these after the parallel tests, on a quiet machine.
pytestmark = [pytest.mark.quiet, pytest.mark.xdist_group("reliability-cli")]
TIMEOUT = 1.0


def run(*args: str) -> Result:
    from console.cli.group import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def reasons(result: Result, kind: str) -> list[str]:
    """The lines that report ``kind`` as failing (status/versions: "! kind", doctor: FAIL)."""
    lines = (result.stdout + result.stderr).splitlines()
    return [ln for ln in lines if ln.startswith((f"! {kind}", f"FAIL {kind}"))]


@dataclass
class World:
    path: Path
    server: FaultServer

    def tags(self) -> list[str]:
        out = subprocess.run(["git", "-C", str(self.path), "tag", "--list"], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return out.stdout.split()

    def audit_count(self) -> int:
        db = self.path / ".cd4ml" / "audit.sqlite"
        if not db.exists():
            return 0
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


@pytest.fixture
def world(
    tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))
    monkeypatch.setenv(TOKEN_ENV, "tok-reliability")
    monkeypatch.setattr("console.identity.current_actor", lambda *a, **k: Actor(user="dev"))
    name = tmp_path.name
    fault_server.add(f"{name}-metrics", scrape_good)
    fault_server.add(f"{name}-deploy", github_good, methods=frozenset({"POST"}))
    extra = f"""
[backends.metrics]
type = "scrape"
url = "{fault_server.url(f"{name}-metrics")}/metrics"
interval_seconds = 0.1

[backends.deploy]
type = "github-actions"
repository = "acme/m"
api_url = "{fault_server.url(f"{name}-deploy")}"
token_env = "{TOKEN_ENV}"
use_keyring = false
credentials_file = "{tmp_path / "none.toml"}"
deploy_workflow = "deploy.yml"
poll_seconds = 0.05
find_run_seconds = 2
"""
    ws = make_workspace(tmp_path / "ws", extra=extra)
    toml = ws.path / "cd4ml-console.toml"
    toml.write_text(f"timeout_seconds = {TIMEOUT}\n" + toml.read_text())
    yield World(ws.path, fault_server)


def _metrics(fault: str) -> Callable[[World], str]:
    def breaks(w: World) -> str:
        w.server.cells[f"{w.path.parent.name}-metrics"].mode = fault
        return "metrics"

    return breaks


def _git_hangs(w: World) -> str:
    shim = w.path.parent / "shim"
    shim.mkdir()
    (shim / "git").write_text("#!/bin/sh\nexec sleep 30\n")
    (shim / "git").chmod(0o755 | stat.S_IXUSR)
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
    return "registry"


def _runs_corrupt(w: World) -> str:
    for record in (w.path / ".ci-runs").glob("*.json"):
        tmp = record.with_name(f".{record.name}.tmp")
        tmp.write_text("{broken")
        os.replace(tmp, record)
    return "ci"


READ_FAULTS = {
    "metrics-blackhole": _metrics("blackhole"),
    "metrics-http_503": _metrics("http_503"),
    "metrics-malformed": _metrics("malformed"),
    "ci-corrupt": _runs_corrupt,
    "git-hangs": _git_hangs,
}


READ_CELLS = [
    (verb, fault)
    for verb in ("status", "versions", "doctor")
    for fault in READ_FAULTS
    if not (verb == "versions" and fault.startswith("metrics"))  # versions shows no live metrics
]


@pytest.mark.parametrize(("verb", "fault"), READ_CELLS, ids=[f"{v}-{f}" for v, f in READ_CELLS])
def test_read_verbs_exit_non_zero_with_a_one_line_reason(
    world: World, verb: str, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored after _git_hangs
    kind = READ_FAULTS[fault](world)
    args = {"status": ["status"], "versions": ["versions", "m"], "doctor": ["doctor"]}[verb]
    started = time.monotonic()
    result = run("-w", str(world.path), *args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.stdout + result.stderr
    lines = reasons(result, kind)
    assert lines, f"no line says {kind} failed:\n{result.stdout}{result.stderr}"
    assert all(len(ln) < 400 and "Traceback" not in ln for ln in lines), lines
    assert "Traceback" not in result.stdout + result.stderr
    assert elapsed < 3 * (TIMEOUT + 1), f"{verb} took {elapsed:.1f}s"


def test_a_failing_deploy_is_sent_once_and_exits_1_with_the_command_that_finishes_it(
    world: World,
) -> None:
    cell = world.server.cells[f"{world.path.parent.name}-deploy"]
    cell.mode = "http_502"
    result = run("-w", str(world.path), "promote", "m", "v1.1.0", "--to", "staging",
                 "--reason", "ship")  # fmt: skip
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "deploy" in result.stdout + result.stderr
    assert "finish it with" in result.stdout + result.stderr
    sent = [h for h in cell.hits if h.method == "POST" and h.path.endswith("/dispatches")]
    assert len(sent) == 1, f"the deploy was sent {len(sent)} times"
    assert any(t.startswith("m#staging#") for t in world.tags())  # the registry did move


@pytest.mark.parametrize("fault", ["audit-locked", "audit-corrupt", "registry-hangs"])
def test_release_verbs_fail_closed_and_change_nothing(
    world: World, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])
    assert run("-w", str(world.path), "requests").exit_code == 0  # creates the audit file
    tags, count = world.tags(), world.audit_count()
    db = world.path / ".cd4ml" / "audit.sqlite"
    locker = None
    if fault == "audit-locked":
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
    elif fault == "audit-corrupt":
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        db.write_bytes(b"not a database " * 500)
    try:
        if fault == "registry-hangs":
            _git_hangs(world)
        result = run("-w", str(world.path), "promote", "m", "v1.1.0", "--to", "staging",
                     "--reason", "ship")  # fmt: skip
    finally:
        if locker is not None:
            locker.execute("ROLLBACK")
            locker.close()
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[-1] if fault == (
            "registry-hangs") else os.environ["PATH"]  # fmt: skip
    out = result.stdout + result.stderr
    assert result.exit_code == 1, out
    assert "nothing was changed" in out, out
    assert "Traceback" not in out
    assert world.tags() == tags
    if fault != "audit-corrupt":
        assert world.audit_count() == count
    deploys = world.server.cells[f"{world.path.parent.name}-deploy"].hits
    assert deploys == []
