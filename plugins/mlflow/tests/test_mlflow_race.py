"""Two consoles on two workspaces, sharing one audit store, promote different versions of one
model to one stage at the same moment, against a real ``mlflow server`` (issue 15).

MLflow has no compare-and-set on aliases (two writers both get 200), so the per-stage intent
lock in the shared audit store decides: the holder is held just before its alias write while
the other is refused, naming it. Every round: exactly one success from each base, never two;
every executed outcome in the audit log is what MLflow's own client then reads; and the log
verifies. Rounds: 50 (CD4ML_LONG=1: 200; CD4ML_RACE_ROUNDS overrides).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.audit.chain import decode_record
from console.backends.sqlite_audit import verify_database
from tests.reliability.test_race import Worker

pytestmark = pytest.mark.xdist_group("mlflow-server")
LONG = os.environ.get("CD4ML_LONG", "").strip().lower() in {"1", "true", "yes", "on"}
ROUNDS = int(os.environ.get("CD4ML_RACE_ROUNDS", "200" if LONG else "50"))
SEED = Path(__file__).resolve().parent / "mlflow_seed.py"
MODEL = "raced"

CONFIG = """
stages = ["staging", "production"]
production_stage = "production"
[workspace]
path = "."
[backends.registry]
type = "mlflow"
url = "{url}"
auth = "none"
use_keyring = false
stage_aliases = {{ production = "champion", staging = "staging" }}
[backends.audit]
type = "sqlite-audit"
path = "{audit}"
[policy.stages.staging]
require_ci_success = false
schema_change_needs_ack = false
[roles]
default = "release_manager"
"""


def _workspace(root: Path, url: str, audit: Path) -> Path:
    root.mkdir(parents=True)
    (root / "cd4ml-console.toml").write_text(CONFIG.format(url=url, audit=audit))
    return root


@pytest.fixture(scope="module")
def mlflow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mlflow_serve: Any
) -> Iterator[Any]:
    """A server of the race's own: the shared one's model list must stay as seeded."""
    with mlflow_serve(request, tmp_path_factory.mktemp("mlflow-race"), seed=False) as server:
        yield server


def test_two_consoles_sharing_one_audit_store_never_both_move_mlflow(
    mlflow_server: Any, tmp_path: Path
) -> None:
    subprocess.run([str(mlflow_server.python), str(SEED), "model", mlflow_server.url, MODEL,
                    "4", "staging", "1"], check=True, capture_output=True, timeout=300)  # fmt: skip
    audit = tmp_path / "shared" / "audit.sqlite"
    places = [_workspace(tmp_path / f"bastion-{i}", mlflow_server.url, audit) for i in (1, 2)]
    workers = [Worker(place, user) for place, user in zip(places, ("dev", "rita"), strict=True)]
    current, winners, problems = "1", [], []
    try:
        for r in range(ROUNDS):
            picks = [v for v in ("1", "2", "3", "4") if v != current][:2]
            for w, v in zip(workers, picks, strict=True):
                w.send(json.dumps({"round": r, "version": v, "model": MODEL}))
            first = [w.read(120) for w in workers]
            held = [w for w, msg in zip(workers, first, strict=True) if msg.get("at") == "assign"]
            early = [msg for msg in first if "status" in msg]
            for w in held:
                w.send("go")
            late = [w.read(120) for w in held]
            done = early + late
            won = [p for p, w, m in zip(picks, workers, first, strict=True)
                   if (late[held.index(w)] if w in held else m)["status"] == "executed"]  # fmt: skip
            if len(held) != 1 or len(won) != 1:
                problems.append(f"round {r}: {len(held)} reached MLflow, {len(won)} won: {done}")
            for msg in early:
                if msg["status"] != "refused" or "is being moved by" not in msg["message"]:
                    problems.append(f"round {r}: the loser was told {msg}")
            if won:
                current = won[0]
                winners.append(current)
            if len(problems) > 5:
                break
    finally:
        for w in workers:
            w.stop()
    assert problems == [], problems
    seen = json.loads(subprocess.run(
        [str(mlflow_server.python), str(SEED), "dump", mlflow_server.url, MODEL],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout)  # fmt: skip
    assert seen["aliases"]["staging"] == current  # MLflow's own client agrees
    with sqlite3.connect(audit) as conn:
        assert verify_database(conn).ok
        rows = conn.execute("SELECT record, hash FROM events ORDER BY seq").fetchall()
    events = [decode_record(r, h) for r, h in rows]
    executed = [e.after for e in events if e.action == "outcome" and e.result == "executed"
                and e.details.get("op") == "promote"]  # fmt: skip
    assert executed == winners  # no executed outcome MLflow did not hold
    moves = [
        (e.before, e.after) for e in events if e.action == "outcome" and e.result == "executed"
    ]
    chain = [after for _, after in moves]
    assert [before for before, _ in moves] == ["1", *chain[:-1]]  # never two from one base
    print(f"{ROUNDS} rounds x 2 consoles on MLflow: {len(winners)} moves, 0 double successes")
