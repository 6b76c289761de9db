"""Two real processes approve at the same moment: both pass every check and append their
intent at once; the audit store's per-stage lock lets exactly one through to the registry, and
the other is refused naming it. (With separate audit stores the registry's compare-and-set
decides: tests/reliability/test_race.py races both.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.release.conftest import Workspace

SCRIPT = r"""
import asyncio, json, sys, time
from pathlib import Path

from console.config import load_config
from console.domain import Actor
from console.services.release import ReleaseService, Refused, ReleaseError
from console.services.workspace import open_workspace

root, user, me, other = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])


class Barrier:
    # Holds the append of an intent until the other process has reached it too.
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def append(self, event):
        if event.action == "intent":
            me.touch()
            deadline = time.monotonic() + 30
            while not other.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return await self.inner.append(event)


async def main():
    ws = open_workspace(load_config(None, root))
    ws.backends["audit"] = Barrier(ws.backends["audit"])
    async with ws:
        svc = ReleaseService(ws, identity=lambda: Actor(user=user))
        try:
            r = await svc.approve("m", "v1.1.0", "production", comment=user)
            print(json.dumps({"status": r.status, "message": r.message}))
        except Refused as exc:
            print(json.dumps({"status": "refused", "kind": exc.kind, "message": exc.message}))
        except ReleaseError as exc:
            print(json.dumps({"status": "failed", "message": exc.message}))

asyncio.run(main())
"""


def test_two_processes_racing_exactly_one_wins(
    workspace: Workspace, run_cli, act_as, tmp_path: Path
) -> None:
    act_as("dev")
    req = run_cli("-w", str(workspace.path), "promote", "m", "v1.1.0", "--to", "production",
                  "--reason", "race")  # fmt: skip
    assert req.exit_code == 0, req.stderr
    script = tmp_path / "approve.py"
    script.write_text(SCRIPT)
    a, b = tmp_path / "a.ready", tmp_path / "b.ready"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(workspace.path), user, str(mine),
                          str(theirs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for user, mine, theirs in (("rita", a, b), ("erin", b, a))
    ]  # fmt: skip
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    statuses = sorted(o["status"] for o in outs)
    assert statuses == ["executed", "refused"], outs
    loser = next(o for o in outs if o["status"] == "refused")
    assert loser["kind"] == "conflict" and "nothing changed" in loser["message"]
    assert "is being moved by" in loser["message"]
    assert [t for t in workspace.tags() if t.startswith("m#production")] == [
        "m#production#1", "m#production#2"
    ]  # fmt: skip

    log = json.loads(run_cli("-w", str(workspace.path), "audit", "m", "--json").stdout)["events"]
    outcomes = sorted(e["result"] for e in log if e["action"] == "outcome")
    assert outcomes == ["executed"]
    assert len([e for e in log if e["action"] == "intent"]) == 1
    refused = [e for e in log if e["action"] == "promote" and e["result"] == "conflict"]
    assert len(refused) == 1 and refused[0]["details"]["holder"] in ("rita", "erin")
    assert run_cli("-w", str(workspace.path), "audit", "verify").exit_code == 0
