"""``doctor``'s team section on a SQLite store: four-eyes resting on file permissions is said
once, plainly, where the policy asks for approvals; a one-user clone is told how to share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.config import parse_config
from console.services.team import four_eyes_caveat
from tests.release.conftest import make_workspace

CAVEAT = "note team                     four-eyes rests on file permissions here; teams: PostgreSQL (docs/team.md)"


def test_doctor_says_four_eyes_rests_on_file_permissions(tmp_path: Path, run_cli: Any) -> None:
    ws = make_workspace(tmp_path / "ws", approvals=2)
    out = run_cli("-w", str(ws.path), "doctor").stdout
    assert CAVEAT in out.splitlines(), out
    assert "--   shared                   one user's workspace; `cd4ml-console init --shared" in out
    none = make_workspace(tmp_path / "ws0", approvals=0)
    assert "four-eyes" not in run_cli("-w", str(none.path), "doctor").stdout


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('[policy.stages.production]\nrequired_approvals = 1\n', True),
        ('[policy.rollback]\nrequired_approvals = 1\n', True),
        ('[policy.stages.production]\nrequired_approvals = 0\n', False),
        ('[policy.stages.production]\nrequired_approvals = 1\n[backends.audit]\ntype = "postgres"\n'
         'dsn = "postgresql://db/x"\n', False),
    ],
)  # fmt: skip
def test_the_caveat_needs_a_sqlite_store_and_approvals(toml: str, said: bool) -> None:
    assert bool(four_eyes_caveat(parse_config(toml, None))) is said
