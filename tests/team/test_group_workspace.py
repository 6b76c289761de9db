"""A group workspace on one bastion, end to end with real OS users (docs/team.md): an admin
runs ``init --shared GROUP``; one user requests, another approves (which executes) and the
first rolls back (writing refs the other created); a third user, outside the group, reads
everything. The tests run as root (CI does); the users are made and removed here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.osusers import Users, need_root, os_users
from tests.release.conftest import make_workspace


@pytest.fixture(scope="module")
def team() -> Iterator[tuple[Users, Path, dict[str, str]]]:
    need_root()
    with os_users("req", "appr", "reader", in_group=("req", "appr")) as users:
        root = Path(tempfile.mkdtemp(prefix="cd4ml-group-"))
        root.chmod(0o755)
        try:
            ws = make_workspace(root / "ws")
            config = ws.path / "cd4ml-console.toml"
            names = users.names
            text = config.read_text().replace(
                'release_manager = ["dev", "rita", "erin", "alice"]',
                f'release_manager = ["{names["req"]}", "{names["appr"]}"]',
            )
            config.write_text(text)
            gitconfig = root / "gitconfig"  # git's system config, for safe.directory
            gitconfig.write_text("")
            gitconfig.chmod(0o644)
            extra = {"GIT_CONFIG_SYSTEM": str(gitconfig), "CD4ML_GTO": ""}
            yield users, ws.path, extra
        finally:
            shutil.rmtree(root, ignore_errors=True)


def cli(team: tuple[Users, Path, dict[str, str]], who: str, *args: str):
    users, path, extra = team
    exe = str(Path(sys.executable).parent / "cd4ml-console")
    if who == "root":
        env = {**users.env("req", **extra), "HOME": "/root", "USER": "root", "LOGNAME": "root"}
        return subprocess.run(
            [exe, "-w", str(path), *args], env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return users.run(who, exe, "-w", str(path), *args, env=users.env(who, **extra))


def test_two_users_act_and_a_third_reads_in_a_group_workspace(team) -> None:
    users, path, _ = team
    before = cli(team, "req", "promote", "m", "v1.1.0", "--to", "production", "--reason", "x")
    assert before.returncode != 0  # not shared yet: the clone is root's, git refuses it

    init = cli(team, "root", "init", "--shared", users.group)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "changed: git keeps new files group-writable: core.sharedRepository=group" in init.stdout
    again = cli(team, "root", "init", "--shared", users.group)
    assert again.returncode == 0 and again.stdout.startswith("nothing to change"), again.stdout

    asked = cli(team, "req", "promote", "m", "v1.1.0", "--to", "production", "--reason",
                "auc up", "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["status"] == "requested"
    done = cli(team, "appr", "approve", "m", "v1.1.0", "--to", "production", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "executed"
    back = cli(team, "req", "rollback", "m", "--reason", "INC-9 errors", "--yes", "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    assert json.loads(back.stdout)["status"] == "executed"
    # v1.1.0 was rolled back above: promoting it again is acknowledged
    again_up = cli(team, "appr", "promote", "m", "v1.1.0", "--to", "production", "--reason",
                   "fixed", "--ack-rolled-back", "--json")  # fmt: skip
    assert again_up.returncode == 0, again_up.stderr

    # The reader is not in the group: doctor tells them the one thing they need.
    told = cli(team, "reader", "doctor")
    fix = f"git config --global --add safe.directory {path}"
    assert fix in told.stdout, told.stdout
    users.run("reader", *fix.split(), env=users.env("reader"))
    for args in (["status", "m", "--json"], ["audit", "m", "--json"], ["audit", "verify"],
                 ["requests", "--json"]):  # fmt: skip
        seen = cli(team, "reader", *args)
        assert seen.returncode == 0, (args, seen.stdout, seen.stderr)
        assert "readonly" not in seen.stdout + seen.stderr
    events = json.loads(cli(team, "reader", "audit", "m", "--json").stdout)["events"]
    actors = {e["actor"] for e in events}
    assert actors == {users.names["req"], users.names["appr"]}
    status = json.loads(cli(team, "reader", "status", "m", "--json").stdout)
    assert status["models"][0]["stages"]["production"]["version"] == "v1.0.0"
    refused = cli(team, "reader", "promote", "m", "v1.1.0", "--to", "production", "--reason", "r")
    assert refused.returncode == 3 and "viewer" in refused.stderr

    doctor = cli(team, "appr", "doctor")
    shared = [line for line in doctor.stdout.splitlines() if " shared " in line]
    assert shared and all(line.startswith("ok") for line in shared), doctor.stdout
    state = path / ".cd4ml"
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"):
        if (state / name).exists():
            assert (state / name).stat().st_mode & 0o060 == 0o060, name
