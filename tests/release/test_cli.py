"""The release CLI on a real workspace (git + GTO tags + SQLite audit), as different OS users."""

from __future__ import annotations

import json
import sqlite3
import subprocess

from tests.release.conftest import Workspace, make_workspace


def doc(result) -> dict:
    return json.loads(result.stdout)


def test_promote_with_quorum_four_eyes_and_audit(workspace: Workspace, run_cli, act_as) -> None:
    w = ["-w", str(workspace.path)]
    act_as("dev")
    first = run_cli(
        *w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "auc up", "--json"
    )
    assert first.exit_code == 0, first.stderr
    out = doc(first)
    assert out["status"] == "requested" and out["request"]["from_version"] == "v1.0.0"
    assert {g["gate"] for g in out["gates"]} >= {"metric:auc:min", "ci", "schema", "approvals"}
    rid = out["request"]["id"]

    pending = run_cli(*w, "requests", "--json")
    assert [r["id"] for r in doc(pending)["requests"]] == [rid]

    again = run_cli(*w, "approve", "m", "v1.1.0", "--to", "production")
    assert again.exit_code == 3 and "four-eyes" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    act_as("alice")  # the author (tagger and commit author) is a release manager too
    own = run_cli(*w, "approve", "m", "v1.1.0", "--to", "production", "--json")
    assert own.exit_code == 3 and doc(own)["kind"] == "four_eyes" and "author" in own.stderr
    act_as("vic")
    viewer = run_cli(*w, "approve", "m", "v1.1.0", "--to", "production")
    assert viewer.exit_code == 3 and "viewer" in viewer.stderr

    act_as("rita")
    ok = run_cli(*w, "approve", "m", "v1.1.0", "--to", "production", "--comment", "lgtm", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert doc(ok)["status"] == "executed" and doc(ok)["request"]["state"] == "executed"
    assert "m#production#2" in workspace.tags()
    tagger = workspace.git("for-each-ref", "--format=%(taggername)", "refs/tags/m#production#2")
    assert tagger == "rita"

    status = run_cli(*w, "status", "m", "--json")
    assert doc(status)["models"][0]["stages"]["production"]["version"] == "v1.1.0"

    log = run_cli(*w, "audit", "m", "--json")
    actions = [(e["action"], e["actor"], e["result"]) for e in doc(log)["events"]]
    assert ("approve", "dev", "refused") in actions and ("approve", "alice", "refused") in actions
    assert actions[-2:] == [("intent", "rita", "pending"), ("outcome", "rita", "executed")]
    assert doc(log)["events"][-1]["details"]["identity"]["ssh_client"] == "192.0.2.10"

    verify = run_cli(*w, "audit", "verify")
    assert verify.exit_code == 0 and verify.stdout.startswith("ok:"), verify.stdout
    anchor = workspace.git("log", "-1", "--format=%s", "refs/cd4ml/audit-anchor")
    assert anchor.split()[0] == str(len(actions))

    csv_out = run_cli(*w, "audit", "--csv")
    assert (
        csv_out.stdout.splitlines()[0].startswith("seq,") and len(csv_out.stdout.splitlines()) > 5
    )

    report = workspace.path / "evidence.md"
    rep = run_cli(*w, "report", "m", "v1.1.0", "-o", str(report))
    assert rep.exit_code == 0, rep.stderr
    text = report.read_text()
    for needle in (rid, "rita", "auc up", "metric:auc:min", "refs/cd4ml/audit-anchor", "Verified: ok",
                   "Sampling", "Schema", "| train |"):  # fmt: skip
        assert needle in text, needle


def test_gate_failure_and_schema_ack(workspace: Workspace, run_cli, act_as) -> None:
    w = ["-w", str(workspace.path)]
    act_as("dev")
    bad = run_cli(*w, "promote", "m", "v1.2.0", "--to", "production", "--reason", "r", "--json")
    assert bad.exit_code == 3 and "0.05" in bad.stderr and doc(bad)["status"] == "refused"
    schema = run_cli(*w, "promote", "m", "v1.3.0", "--to", "production", "--reason", "r")
    assert schema.exit_code == 3 and "--ack-schema-change" in schema.stderr
    acked = run_cli(*w, "promote", "m", "v1.3.0", "--to", "production", "--reason", "r",
                    "--ack-schema-change")  # fmt: skip
    assert acked.exit_code == 0 and "requested" in acked.stdout
    plan = run_cli(*w, "promote", "m", "v1.3.0", "--to", "production", "--dry-run", "--json")
    assert doc(plan)["plan"]["request_id"] and doc(plan)["plan"]["required_approvals"] == 1
    usage = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production")
    assert usage.exit_code == 2 and "--reason" in usage.stderr
    unknown = run_cli(*w, "promote", "m", "v9.0.0", "--to", "production", "--reason", "r")
    assert unknown.exit_code == 2
    ro = run_cli(*w, "--read-only", "promote", "m", "v1.1.0", "--to", "production", "--reason", "r")
    assert ro.exit_code == 3 and "read-only" in ro.stderr

    def recorded() -> int:
        with sqlite3.connect(workspace.path / ".cd4ml" / "audit.sqlite") as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])

    events = recorded()
    for reason, said in (("x" * 10_000, "10,000 characters long"),
                         ("ok\x1b[2Jwiped", "control characters (\\x1b)"),
                         ("\u202eevil", "control characters")):  # fmt: skip
        odd = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", reason)
        assert odd.exit_code == 2 and said in odd.stderr, odd.stderr
    assert recorded() == events  # nothing recorded


def test_rollback_and_compare(tmp_path, run_cli, act_as) -> None:
    ws = make_workspace(tmp_path / "ws", approvals=0)
    w = ["-w", str(ws.path)]
    act_as("dev")
    assert (
        run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "r").exit_code == 0
    )
    cmp = run_cli(*w, "compare", "m", "v1.0.0", "v1.3.0", "--json")
    assert cmp.exit_code == 0, cmp.stderr
    c = doc(cmp)
    assert c["base_version"] == "v1.1.0" and [x["version"] for x in c["candidates"]] == [
        "v1.0.0",
        "v1.3.0",
    ]
    assert c["candidates"][1]["schema"]["changes"][0]["kind"] in ("added", "removed")
    assert [t["version"] for t in c["trend"]] == ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"]
    text = run_cli(*w, "compare", "m", "v1.3.0")
    assert "better" in text.stdout and "schema:" in text.stdout

    plan = run_cli(*w, "rollback", "m", "--dry-run", "--json")
    assert doc(plan)["plan"]["version"] == "v1.0.0" and doc(plan)["plan"]["confirm_model_name"]
    wrong = run_cli(*w, "rollback", "m", "--reason", "INC-7", input="n\n")
    assert wrong.exit_code == 2 and "not confirmed" in wrong.stderr
    act_as("vic")
    assert run_cli(*w, "rollback", "m", "--reason", "INC-7", "--yes").exit_code == 3
    act_as("erin")
    done = run_cli(*w, "rollback", "m", "--reason", "INC-7: errors", "--json", input="m\n")
    assert done.exit_code == 0, done.stderr
    assert doc(done)["status"] == "executed" and doc(done)["action"] == "rollback"
    status = run_cli(*w, "status", "m", "--json")
    assert doc(status)["models"][0]["stages"]["production"]["version"] == "v1.0.0"


def test_audit_verify_names_the_first_tampered_record(
    workspace: Workspace, run_cli, act_as
) -> None:
    w = ["-w", str(workspace.path)]
    act_as("dev")
    run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "r")
    act_as("rita")
    assert run_cli(*w, "approve", "m", "v1.1.0", "--to", "production").exit_code == 0
    db = workspace.path / ".cd4ml" / "audit.sqlite"
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER events_no_update")
    record = con.execute("SELECT record FROM events WHERE seq = 2").fetchone()[0]
    con.execute("UPDATE events SET record = ? WHERE seq = 2",
                (record.replace(b'"rita"', b'"eve!"'),))  # fmt: skip
    con.commit()
    bad = run_cli(*w, "audit", "verify", "--json")
    assert bad.exit_code == 1 and doc(bad)["first_bad_seq"] == 2
    text = run_cli(*w, "audit", "verify")
    assert text.exit_code == 1 and "seq 2" in text.stdout
    con.execute("UPDATE events SET record = ? WHERE seq = 2", (record,))
    con.execute("DROP TRIGGER events_no_delete")
    n = con.execute("SELECT max(seq) FROM events").fetchone()[0]
    con.execute(
        "DELETE FROM events WHERE seq = ?", (n,)
    )  # drop the newest: only the anchor sees it
    con.commit()
    con.close()
    cut = run_cli(*w, "audit", "verify")
    assert cut.exit_code == 1 and f"seq {n}" in cut.stdout and "removed" in cut.stdout


def test_unanchored_log_says_since_when(tmp_path, run_cli, act_as) -> None:
    ws = make_workspace(tmp_path / "ws")
    w = ["-w", str(ws.path)]
    act_as("dev")
    run_cli(
        *w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "r"
    )  # no move: no anchor
    out = run_cli(*w, "audit", "verify")
    assert out.exit_code == 0 and "unanchored since seq 1" in out.stdout


def test_python_m_console_runs_the_release_commands(workspace: Workspace) -> None:
    import sys

    code = ("from console.cli.group import cli; from console.cli.release import register; "
            "register(cli); cli(prog_name='cd4ml-console')")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, "-w", str(workspace.path), "rollback", "m", "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3 and "no earlier version" in done.stderr


DEPLOY = """
[backends.deploy]
type = "command-deploy"
command = ["sh", "-c", "test -e deploy-ok && echo deployed {model} {version} to {stage}"]
timeout_seconds = 20
"""


def test_deploy_failure_then_finish_with_the_printed_command(tmp_path, run_cli, act_as) -> None:
    ws = make_workspace(tmp_path / "ws", approvals=0)
    with (ws.path / "cd4ml-console.toml").open("a") as f:
        f.write(DEPLOY)
    w = ["-w", str(ws.path)]
    act_as("dev")
    plan = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--dry-run")
    assert "deploy: command-deploy: sh -c" in plan.stdout
    failed = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "r", "--json")
    assert failed.exit_code == 1
    out = doc(failed)
    assert out["status"] == "deploy_failed" and "deploy effect failed" in out["message"]
    assert "promote m v1.1.0 --to production" in out["next_command"]
    assert "rollback m --stage production --to v1.0.0" in out["message"]
    assert "m#production#2" in ws.tags()
    (ws.path / "deploy-ok").touch()
    done = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "finish")
    assert done.exit_code == 0 and "deployed m v1.1.0 to production" in done.stdout
    assert [t for t in ws.tags() if t.startswith("m#production")] == ["m#production#1",
                                                                       "m#production#2"]  # fmt: skip


def test_open_intent_is_reconciled_and_shown_on_the_next_start(tmp_path, run_cli, act_as) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from console.config import load_config
    from console.domain import AuditEvent
    from console.services.workspace import open_workspace

    ws = make_workspace(tmp_path / "ws")
    ws.git("tag", "-a", "m#production#2", ws.commits["c2"], "-m", "moved, then the process died")

    async def crash_after_move() -> None:
        space = open_workspace(load_config(None, ws.path))
        async with space:
            await space.get("audit").append(AuditEvent(
                seq=0, at=datetime.now(UTC) - timedelta(hours=1), actor="dev", action="intent",
                model="m", version="v1.1.0", stage="production", before="v1.0.0", after="v1.1.0",
                request_id="req-crashed", details={"op": "promote"},
            ))  # fmt: skip

    asyncio.run(crash_after_move())
    act_as("rita")
    shown = run_cli("-w", str(ws.path), "requests")
    assert "reconciled intent seq 1 (promote m v1.1.0 to production): executed" in shown.stderr
    log = doc(run_cli("-w", str(ws.path), "audit", "--json"))["events"]
    assert (log[-1]["action"], log[-1]["result"], log[-1]["details"]["reconciled"]) == (
        "outcome", "executed", True
    )  # fmt: skip
    again = run_cli("-w", str(ws.path), "requests")
    assert "reconciled" not in again.stderr


def test_a_change_without_a_reason_is_refused_and_nothing_moves(
    workspace: Workspace, run_cli, act_as
) -> None:
    w = ["-w", str(workspace.path)]
    act_as("dev")
    tags = workspace.tags()
    for argv in (
        ("promote", "m", "v1.1.0", "--to", "production"),
        ("promote", "m", "v1.1.0", "--to", "production", "--reason", "  "),
        ("rollback", "m", "--yes"),
    ):
        result = run_cli(*w, *argv)
        assert result.exit_code == 2, result.stderr
        assert f"{argv[0]} needs --reason TEXT" in result.stderr
    assert workspace.tags() == tags
    pending = run_cli(*w, "requests", "--json")
    assert doc(pending)["requests"] == []
