"""SIGHUP and SIGTERM at ten points of a promotion run by the CLI (a real process): at nine
git invocations spread over the run (each held by a PATH shim until the signal comes) and
while the deploy command runs. Each time the CLI exits within 2 s, with a one-line reason and
exit code 128 + the signal, leaves no process behind (the held git, the deploy command and its
children included), the audit chain verifies, and the next start reconciles any intent the
signal left open with what the registry shows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from console.backends.sqlite_audit import verify_database
from console.config import load_config
from console.domain import Actor
from console.services.release import ReleaseService
from console.services.workspace import open_workspace
from tests.release.conftest import make_workspace

pytestmark = pytest.mark.xdist_group("reliability-hangup")
ROOT = Path(__file__).resolve().parents[2]
GIT = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True,
                     check=True).stdout.strip()  # fmt: skip
SHIM = f"""#!/bin/sh
exec 9>>"$HANGUP_DIR/count.lock"
flock 9
n=$(( $(cat "$HANGUP_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo $n > "$HANGUP_DIR/count"
flock -u 9
if [ "$n" = "$HANGUP_AT" ]; then echo $$ > "$HANGUP_DIR/held"; exec sleep 30; fi
exec {GIT} "$@"
"""
DEPLOY = (
    'if [ -n "$HANGUP_DEPLOY" ]; then (sleep 30 &); echo $$ > "$HANGUP_DIR/held"; '
    "exec sleep 30; fi; echo deployed"
)
EXTRA = """
[backends.deploy]
type = "command-deploy"
command = ["sh", "deploy.sh", "{model}", "{version}"]
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hangup")
    ws = make_workspace(base / "ws", extra=EXTRA)
    (ws.path / "deploy.sh").write_text(DEPLOY + "\n")
    shim = base / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text(SHIM)
    shim.chmod(0o755)
    return ws.path


def _cli(
    ws: Path, shims: Path, work: Path, at: int | None, deploy: bool, run_id: str
) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
           "HANGUP_DIR": str(work), "HANGUP_AT": str(at or 0), "CD4ML_HANGUP_RUN": run_id,
           "CD4ML_LOG_FILE": str(work / "console.log"), "PYTHONPATH": str(ROOT)}  # fmt: skip
    if deploy:
        env["HANGUP_DEPLOY"] = "1"
    code = ("import console.identity as i; from console.domain import Actor; "
            "i.current_actor = lambda *a, **k: Actor(user='dev'); "
            "from console.cli import main; import sys; "
            "sys.argv = ['cd4ml-console'] + sys.argv[1:]; main()")  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code, "-w", str(ws), "promote", "m", "v1.1.0", "--to", "staging",
         "--reason", "hang-up test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def _copy(template: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(template), str(dest)], check=True)
    return dest


@pytest.fixture(scope="module")
def git_calls(template: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many git processes a clean promotion starts."""
    base = tmp_path_factory.mktemp("clean")
    ws = _copy(template, template.parent / "clean-ws")
    proc = _cli(ws, template.parent / "bin", base, None, False, uuid.uuid4().hex)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return int((base / "count").read_text())


def _points(total: int) -> list[int]:
    return sorted({max(1, round(1 + i * (total - 1) / 8)) for i in range(9)})


def _alive(run_id: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"CD4ML_HANGUP_RUN={run_id}".encode() in env:
            found.append(f"{proc.name}: {cmd}")
    return found


POINTS = [f"git-{i}" for i in range(9)] + ["deploy"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
@pytest.mark.parametrize("point", POINTS)
def test_a_signal_mid_promotion(
    template: Path, git_calls: int, tmp_path: Path, point: str, sig: signal.Signals
) -> None:
    points = _points(git_calls)
    if point != "deploy" and int(point.split("-")[1]) >= len(points):
        pytest.skip(f"the promotion starts only {git_calls} git processes")
    at = None if point == "deploy" else points[int(point.split("-")[1])]
    ws = _copy(template, tmp_path / "ws")
    run_id = uuid.uuid4().hex
    proc = _cli(ws, template.parent / "bin", tmp_path, at, point == "deploy", run_id)
    held = tmp_path / "held"
    deadline = time.monotonic() + 30
    while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.exists(), f"never reached {point}: {proc.communicate()}"
    time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = time.monotonic() - sent
    assert took <= 2.0, f"exited {took:.2f}s after {sig.name}"
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and f"stopped by {sig.name}" in lines[-1] and "Traceback" not in err, err
    time.sleep(0.1)
    assert _alive(run_id) == [], "processes left behind"
    _check_reconciled(ws)


def _check_reconciled(ws: Path) -> None:
    db = ws / ".cd4ml" / "audit.sqlite"
    import sqlite3

    if db.exists():
        with sqlite3.connect(db) as conn:
            assert verify_database(conn).ok

    async def next_start() -> None:
        async with open_workspace(load_config(None, ws)) as w:
            svc = ReleaseService(w, identity=lambda: Actor(user="dev"),
                                 reconcile_grace=timedelta(0))  # fmt: skip
            done = await svc.reconcile()
            staging = {a.stage: a.version for a in await w.backends["registry"].stages("m")}
            for r in done:
                if r.op in ("promote", "rollback"):
                    moved = staging.get("staging") == r.version
                    assert r.result == ("executed" if moved else "failed"), r
            assert await svc.reconcile() == [], "an intent is still open"

    asyncio.run(next_start())
