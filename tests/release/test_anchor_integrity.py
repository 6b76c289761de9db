"""The audit anchor fails closed (issue 14, findings 3 and 4).

The log's tail is cut, then the anchor is removed, pointed at a blob or at a commit that is
not an anchor, or git is missing: `audit verify` fails and release actions refuse before
anything moves, and the broken anchor is never replaced by one blessing the cut log. A config
pointing the audit backend at another file is refused before production moves. Only an admin's
explicit, recorded `audit anchor --reset` starts a new anchor history.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.release.conftest import Workspace

REF = "refs/cd4ml/audit-anchor"


def _ref(ws: Workspace) -> str:
    done = subprocess.run(["git", "-C", str(ws.path), "rev-parse", "-q", "--verify", REF],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip()


def _records(ws: Workspace, db: Path | None = None) -> int:
    with sqlite3.connect(db or ws.path / ".cd4ml" / "audit.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def _cut_tail(ws: Workspace, n: int) -> None:
    with sqlite3.connect(ws.path / ".cd4ml" / "audit.sqlite", isolation_level=None) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        conn.execute("DELETE FROM events WHERE seq > ?", (top - n,))


@pytest.fixture
def anchored(workspace: Workspace, run_cli: Callable[..., object], act_as) -> Workspace:
    """Three executed promotions to staging (3 records each): the records of the second and
    third remember the anchor the first one made."""
    act_as("dev")
    for version in ("v1.1.0", "v1.2.0", "v1.0.0"):
        done = run_cli("-w", str(workspace.path), "promote", "m", version, "--to", "staging",
                       "--reason", "ship")  # fmt: skip
        assert done.exit_code == 0, done.stdout + done.stderr  # type: ignore[attr-defined]
    assert _ref(workspace)
    return workspace


def _delete(ws: Workspace) -> None:
    ws.git("update-ref", "-d", REF)


def _blob(ws: Workspace) -> None:
    blob = subprocess.run(["git", "-C", str(ws.path), "hash-object", "-w", "--stdin"],
                          input="not an anchor\n", capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    ws.git("update-ref", REF, blob)


def _foreign_commit(ws: Workspace) -> None:
    ws.git("update-ref", REF, ws.git("rev-parse", "HEAD"))


def _no_git(ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    empty = tmp / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


CASES = {"deleted": _delete, "blob": _blob, "foreign-commit": _foreign_commit}


@pytest.mark.parametrize("case", [*CASES, "no-git"])
def test_a_cut_log_with_a_broken_anchor_fails_verify_and_refuses_actions(
    anchored: Workspace, run_cli, act_as, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    case: str,
) -> None:  # fmt: skip
    ws = anchored
    _cut_tail(ws, 4)
    if case == "no-git":
        ref_before = _ref(ws)
        _no_git(ws, monkeypatch, tmp_path)
    else:
        CASES[case](ws)
        ref_before = _ref(ws)
    records = _records(ws)

    verify = run_cli("-w", str(ws.path), "audit", "verify")
    assert verify.exit_code == 1, verify.stdout + verify.stderr
    assert "FAILED" in verify.stdout and "anchor" in verify.stdout

    act_as("dev")
    promote = run_cli("-w", str(ws.path), "promote", "m", "v1.1.0", "--to", "staging",
                      "--reason", "after the cut")  # fmt: skip
    assert promote.exit_code != 0, promote.stdout
    if case != "no-git":  # without git the registry can not be read either
        assert "audit" in promote.stderr and "nothing was changed" in promote.stderr
    monkeypatch.undo()
    assert _records(ws) == records  # not even a refusal was written to that log
    assert _ref(ws) == ref_before  # never re-anchored over the cut log
    staging = [t for t in ws.tags() if t.startswith("m#staging")]
    assert len(staging) == 3  # nothing moved


def test_a_config_pointing_the_audit_log_elsewhere_is_refused_before_anything_moves(
    anchored: Workspace, run_cli, act_as, tmp_path: Path
) -> None:
    ws = anchored
    other = tmp_path / "other.toml"
    text = (ws.path / "cd4ml-console.toml").read_text()
    other.write_text(
        text.replace("[policy", f'[workspace]\npath = "{ws.path}"\n\n'
                     f'[backends.audit]\ntype = "sqlite-audit"\npath = "{tmp_path / "o.db"}"'
                     "\n\n[policy", 1)
    )  # fmt: skip
    act_as("dev")
    promote = run_cli("--config", str(other), "promote", "m", "v1.1.0", "--to", "staging",
                      "--reason", "elsewhere")  # fmt: skip
    assert promote.exit_code == 1, promote.stdout + promote.stderr
    assert "anchor says" in promote.stderr and "another log" in promote.stderr
    assert len([t for t in ws.tags() if t.startswith("m#staging")]) == 3
    assert _records(ws, tmp_path / "o.db") == 0
    doctor = run_cli("--config", str(other), "doctor")
    assert "FAIL anchor" in doctor.stdout, doctor.stdout


def test_an_admin_re_anchors_explicitly_and_on_the_record(
    anchored: Workspace, run_cli, act_as
) -> None:
    ws = anchored
    _cut_tail(ws, 4)
    _delete(ws)
    act_as("dev")
    refused = run_cli("-w", str(ws.path), "audit", "anchor", "--reset", "--reason", "x")
    assert refused.exit_code == 3 and "admin" in refused.stderr
    state = run_cli("-w", str(ws.path), "audit", "anchor")
    assert state.exit_code == 1 and "FAILED" in state.stdout and "missing" in state.stdout

    act_as("erin")
    done = run_cli("-w", str(ws.path), "audit", "anchor", "--reset", "--json",
                   "--reason", "INC-7: tail lost in a disk restore, checked against backups")  # fmt: skip
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "anchored anew" in json.loads(done.stdout)["message"]
    assert run_cli("-w", str(ws.path), "audit", "verify").exit_code == 0
    log = json.loads(run_cli("-w", str(ws.path), "audit", "--json").stdout)["events"]
    reset = log[-1]
    assert reset["action"] == "anchor_reset" and reset["actor"] == "erin"
    assert "missing" in reset["details"]["previous_anchor"]
    act_as("dev")
    promote = run_cli("-w", str(ws.path), "promote", "m", "v1.1.0", "--to", "staging",
                      "--reason", "after the reset")  # fmt: skip
    assert promote.exit_code == 0, promote.stdout + promote.stderr


def test_a_workspace_that_never_had_an_anchor_acts_and_anchors(
    workspace: Workspace, run_cli, act_as
) -> None:
    act_as("dev")
    done = run_cli("-w", str(workspace.path), "promote", "m", "v1.1.0", "--to", "staging",
                   "--reason", "first")  # fmt: skip
    assert done.exit_code == 0, done.stdout + done.stderr
    assert _ref(workspace) and os.path.exists(workspace.path / ".cd4ml" / "audit.sqlite")


def test_two_clones_sharing_one_audit_store_keep_their_own_anchors(
    tmp_path: Path, run_cli, act_as
) -> None:
    """A store shared by two clones remembers both clones' anchors; each clone holds only its
    own, and neither takes the other's for a removed one."""
    from tests.release.conftest import make_workspace

    shared = tmp_path / "shared" / "audit.sqlite"
    a = make_workspace(
        tmp_path / "a", extra=f'[backends.audit]\ntype = "sqlite-audit"\npath = "{shared}"\n'
    )
    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a.path), str(b)], check=True)
    (b / "cd4ml-console.toml").write_text((a.path / "cd4ml-console.toml").read_text())
    act_as("dev")
    for place, version in ((a.path, "v1.1.0"), (b, "v1.2.0"), (a.path, "v1.0.0"), (b, "v1.1.0")):
        done = run_cli("-w", str(place), "promote", "m", version, "--to", "staging",
                       "--reason", "shared")  # fmt: skip
        assert done.exit_code == 0, done.stdout + done.stderr
    for place in (a.path, b):
        verify = run_cli("-w", str(place), "audit", "verify")
        assert verify.exit_code == 0, verify.stdout + verify.stderr
    a.git("update-ref", "-d", REF)  # clone a loses its anchor: a notices, b does not care
    assert run_cli("-w", str(a.path), "audit", "verify").exit_code == 1
    assert run_cli("-w", str(b), "audit", "verify").exit_code == 0
