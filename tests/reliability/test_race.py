"""Races on a stage, against the real GtoRegistry and SqliteAuditStore on one real repository.

Long-lived worker processes (race_worker.py) each start one promotion per round, of different
versions into the same stage. Two lines of defence are raced separately:

- ``own`` audit store per worker (as on two clones or bastions): every worker is held at the
  registry's compare-and-set until all have reached it, then all are released at once; the
  registry decides. The audit logs hold a request and an intent from each worker, one executed
  and the rest conflicting outcomes.
- ``shared`` audit store: the per-stage intent lock decides before the registry is touched;
  the holder is held at the registry while the others are refused, naming it. The log holds a
  request from each worker, one intent, one executed outcome and a conflict per loser.
- ``clones``: every worker in its own clone of one bare remote (its own audit store too), as
  release managers on two bastions: each fetches before deciding and writes with one atomic
  push; the remote decides. The remote's tags name the winners, and `gto show` in a third
  clone agrees after a fetch.

Each round: exactly one wins, nobody else reports success, every loser is refused with a
conflict saying nothing changed. Rounds: 1,000 (own), 250 (shared) and 50 (clones) with
two workers; CD4ML_LONG=1: eight workers, 200 rounds across clones (CD4ML_RACE_ROUNDS
overrides the count).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest

from console.audit.chain import decode_record
from console.backends.sqlite_audit import verify_database
from tests.release.conftest import Workspace, make_workspace

from .conftest import LONG

pytestmark = pytest.mark.xdist_group("reliability-race")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORKERS = 8 if LONG else 2
# A promotion reads only the audit events appended since the last one (the service keeps its
# fold of the requests), but the GTO registry still reads every tag on each read, so rounds
# get slower as staging tags pile up (one per round): see docs/reliability.md, "Race".
ROUNDS = int(os.environ.get("CD4ML_RACE_ROUNDS", "1000"))
# A round across clones fetches and pushes (~0.6 s on the 2-core VM): 50 here, 200 when long.
CLONE_ROUNDS = int(os.environ.get("CD4ML_RACE_ROUNDS", "200" if LONG else "50"))


class Worker:
    def __init__(self, ws: Path, user: str, audit: Path | None = None) -> None:
        self.user = user
        own = [str(audit)] if audit is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "race_worker.py"), str(ws), user, *own],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert self.read(60) == {"ready": user}

    @property
    def out(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 30) -> dict[str, Any]:
        ready, _, _ = select.select([self.out], [], [], timeout)
        line = self.out.readline() if ready else ""
        if not line:
            err = (
                self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            )
            raise AssertionError(f"worker {self.user} said nothing: {err[-2000:]}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _more_versions(ws: Workspace, n: int) -> None:
    """Versions v1.4.0 ... on new commits, so eight workers each have their own."""
    for i in range(n):
        (ws.path / "models" / "m" / "notes.txt").write_text(f"{i}\n")
        ws.git("add", "-A")
        ws.git("commit", "-q", "-m", f"m: retrain {i}")
        sha = ws.git("rev-parse", "HEAD")
        ws.git("tag", "-a", f"m@v1.{4 + i}.0", sha, "-m", "register",
               who="Alice Chen <alice.chen@example.com>")  # fmt: skip


def _staging_tags(path: Path) -> list[tuple[int, str]]:
    """(counter, version) of every m#staging#N tag, oldest first."""
    out = subprocess.run(
        ["git", "-C", str(path), "for-each-ref", "--format=%(refname:short) %(*objectname)",
         "refs/tags/m#staging#*", "refs/tags/m@*"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    by_commit = {c: n.split("@")[1] for n, c in (ln.split() for ln in out if "@" in ln)}
    stage = [(int(n.rsplit("#", 1)[1]), by_commit[c]) for n, c in
             (ln.split() for ln in out if "#staging#" in ln)]  # fmt: skip
    return sorted(stage)


def _clones(ws: Workspace, tmp_path: Path, n: int) -> tuple[Path, list[Path]]:
    """A bare remote of ``ws`` and ``n`` clones of it, each with the workspace's config."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ws.path), str(remote)], check=True)
    clones = []
    for i in range(n):
        path = tmp_path / f"clone-{i}"
        subprocess.run(["git", "clone", "-q", str(remote), str(path)], check=True)
        shutil.copy(ws.path / "cd4ml-console.toml", path / "cd4ml-console.toml")
        shutil.copytree(ws.path / ".ci-runs", path / ".ci-runs")
        clones.append(path)
    return remote, clones


@pytest.mark.parametrize("store", ["own", "shared", "clones"])
def test_racing_promotions_exactly_one_wins_each_round(tmp_path: Path, store: str) -> None:
    ws = make_workspace(tmp_path / "ws")
    _more_versions(ws, max(0, WORKERS + 1 - 4))
    versions = sorted({t.split("@")[1] for t in ws.tags() if t.startswith("m@")},
                      key=lambda v: tuple(int(x) for x in v[1:].split(".")))  # fmt: skip
    users = ["dev", "rita", "erin", "alice"][: min(WORKERS, 4)]
    audits = [tmp_path / f"audit-{i}.sqlite" if store == "own" else None for i in range(WORKERS)]
    remote, clones = _clones(ws, tmp_path, WORKERS) if store == "clones" else (None, [])
    places = clones or [ws.path] * WORKERS
    workers = [Worker(places[i], users[i % len(users)], audits[i]) for i in range(WORKERS)]
    rounds = {"own": ROUNDS, "shared": max(1, ROUNDS // 4), "clones": CLONE_ROUNDS}[store]
    reach = 1 if store == "shared" else WORKERS  # the lock stops the others before the registry
    current: str | None = None
    winners: list[str] = []
    problems: list[str] = []
    started = time.monotonic()
    try:
        for r in range(rounds):
            choice = [v for v in versions if v != current]
            picks = [choice[(r + i) % len(choice)] for i in range(WORKERS)]
            assert len(set(picks)) == WORKERS
            for w, v in zip(workers, picks, strict=True):
                w.send(json.dumps({"round": r, "version": v}))
            first = [w.read() for w in workers]
            held = [w for w, msg in zip(workers, first, strict=True) if msg.get("at") == "assign"]
            results = [msg for msg in first if "status" in msg]
            if len(held) != reach:
                problems.append(f"round {r}: {len(held)} reached the registry: {results}")
            for w in held:
                w.send("go")
            results += [w.read() for w in held]
            statuses = Counter(res["status"] for res in results)
            won = [p for p, res in zip(picks, _by_worker(workers, held, first, results), strict=True)
                   if res["status"] == "executed"]  # fmt: skip
            if statuses != Counter({"executed": 1, "refused": WORKERS - 1}):
                problems.append(f"round {r}: {dict(statuses)}: {results}")
            for res in results:
                if res["status"] == "refused" and (
                    res["kind"] != "conflict" or "nothing changed" not in res["message"]
                ):
                    problems.append(f"round {r}: loser told {res}")
            if len(won) == 1:
                winners.append(won[0])
                current = won[0]
            if len(problems) > 5:
                break
    finally:
        for w in workers:
            w.stop()
    elapsed = time.monotonic() - started
    assert problems == [], problems
    truth = remote or ws.path
    assert [v for _, v in _staging_tags(truth)] == winners  # the registry agrees
    files = (
        [a for a in audits if a is not None]
        or [c / ".cd4ml" / "audit.sqlite" for c in clones]
        or [ws.path / ".cd4ml" / "audit.sqlite"]
    )
    _check_audit(files, rounds, "shared" if store == "shared" else "own")
    if remote is not None:
        _gto_agrees(remote, tmp_path / "third", winners[-1])
    print(f"{store} store: {rounds} rounds x {WORKERS} workers in {elapsed:.1f}s")


def _gto_agrees(remote: Path, third: Path, version: str) -> None:
    """`gto show` in a third clone, after a fetch, sees the last winner in staging."""
    gto = Path(os.environ.get("CD4ML_GTO") or ROOT / ".venv-gto" / "bin" / "gto")
    if not gto.exists():
        pytest.skip(f"the gto CLI is not installed at {gto} (set CD4ML_GTO)")
    subprocess.run(["git", "clone", "-q", str(remote), str(third)], check=True)
    subprocess.run(["git", "-C", str(third), "fetch", "-q", "--tags"], check=True)
    out = subprocess.run([str(gto), "show", "--json"], cwd=third, capture_output=True,
                         text=True, check=True, timeout=120).stdout  # fmt: skip
    assert json.loads(out)["m"]["stage"]["staging"] == version, out


def _by_worker(
    workers: list[Worker], held: list[Worker], first: list[dict[str, Any]],
    results: list[dict[str, Any]],
) -> list[dict[str, Any]]:  # fmt: skip
    """Each worker's final result, in worker order."""
    early = iter(m for m in first if "status" in m)
    late = iter(results[len([m for m in first if "status" in m]) :])
    return [next(late) if w in held else next(early) for w in workers]


def _check_audit(files: list[Path], rounds: int, store: str) -> None:
    """Every attempt is in the logs (see the module's docstring); every chain verifies."""
    per_round: dict[str, Counter[str]] = {}
    for db in files:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT record, hash FROM events ORDER BY seq").fetchall()
            assert verify_database(conn).ok
        by_request: dict[str, str] = {}
        for record, digest in rows:
            e = decode_record(record, digest)
            if e.action == "request":
                by_request[e.request_id] = e.reason
            key = by_request.get(e.request_id, "")
            label = f"{e.action}:{e.result}" if e.action in ("outcome", "promote") else e.action
            per_round.setdefault(key, Counter())[label] += 1
    losers = WORKERS - 1
    expected = (
        Counter({"request": WORKERS, "intent": WORKERS, "outcome:executed": 1,
                 "outcome:conflict": losers})
        if store == "own"
        else Counter({"request": WORKERS, "intent": 1, "outcome:executed": 1,
                      "promote:conflict": losers})
    )  # fmt: skip
    bad = {}
    for r in range(rounds):
        got = per_round.get(f"race {r}", Counter())
        got.pop("cancel", None)  # the winner closes the losers' still-pending requests
        if got != expected:
            bad[r] = dict(got)
    assert bad == {}, list(bad.items())[:5]
