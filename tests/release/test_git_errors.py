"""A git that refuses to write for a reason other than a lost race (issue 14, finding 7): the
message names the cause and the fix, never "moved by someone else"."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.release.conftest import Workspace

# git's own words (refs/files-backend.c, lockfile.c) when the lock file can not be created.
DENIED = (
    "fatal: cannot lock ref 'refs/cd4ml-console/stage-guards/0a1b2c': Unable to create "
    "'{repo}/.git/refs/cd4ml-console/stage-guards/0a1b2c.lock': Permission denied"
)


@pytest.fixture
def refusing_git(tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("git")
    assert real
    shim = tmp_path / "shim"
    shim.mkdir()
    script = shim / "git"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" update-ref --stdin "*)\n'
        f'  echo "{DENIED.format(repo=workspace.path)}" >&2; exit 128;;\n'
        "esac\n"
        f'exec "{real}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim}:{Path(real).parent}")


def test_a_permission_error_is_named_not_reported_as_a_concurrent_writer(
    workspace: Workspace, run_cli, act_as, refusing_git: None
) -> None:
    act_as("dev")
    done = run_cli("-w", str(workspace.path), "rollback", "m", "--stage", "production", "--to",
                   "v1.1.0", "--reason", "incident", "--yes", "--json")  # fmt: skip
    said = done.stdout + done.stderr
    assert done.exit_code == 1, said
    assert "Permission denied" in said and "init --shared" in said
    assert "moved" not in said.replace("did not move", "")
    assert [t for t in workspace.tags() if t.startswith("m#production")] == ["m#production#1"]
