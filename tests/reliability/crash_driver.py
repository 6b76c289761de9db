"""Run in its own (single-threaded) process: fork an appender, SIGKILL it at a random point,
check the file, repeat. Prints one JSON line: rounds, acknowledged events, problems.

usage: python crash_driver.py DB ROUNDS SEED
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.backends.sqlite_audit import SqliteAuditStore, verify_database
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        seq=0, at=T0 + timedelta(seconds=i), actor=f"user{i % 5}", action="intent",
        model=f"m{i % 3}", version=f"v1.{i}.0", stage="production", reason="r" * (i % 700),
        request_id=f"req-{i}", details={"i": i, "blob": "x" * ((i * 37) % 3000)},
    )  # fmt: skip


def appender(path: Path, fd: int, start: int) -> None:
    async def run() -> None:
        ctx = BackendContext(workspace=path.parent, state_dir=path.parent, config=None, timeout=5)
        store = SqliteAuditStore(SqliteAuditConfig(path=str(path)), ctx)
        i = start
        while True:
            stored = await store.append(event(i))
            os.write(fd, f"{stored.seq} {stored.hash}\n".encode())
            i += 1

    asyncio.run(run())


def drain(fd: int) -> list[tuple[int, str]]:
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    out = []
    for line in data.decode().splitlines():
        seq, digest = line.split()
        out.append((int(seq), digest))
    return out


def check(path: Path, acked: dict[int, str]) -> str:
    """ "" when the file holds a valid chain with every acknowledged record; else why not."""
    if not path.exists():
        return "" if not acked else "the file is gone"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            return "integrity_check failed (a torn page)"
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
            return "" if not acked else "the schema is gone"
        result = verify_database(conn)
        if not result.ok:
            return f"verify: {result.reason}"
        rows = dict(conn.execute("SELECT seq, hash FROM events").fetchall())
        lost = [s for s, h in acked.items() if rows.get(s) != h]
        return f"acknowledged records lost or changed: {lost[:5]}" if lost else ""
    finally:
        conn.close()


def main() -> None:
    path, rounds, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    acked: dict[int, str] = {}
    problems: list[str] = []
    mid_append = 0
    for r in range(rounds):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child appends until it is killed
            os.close(read)
            try:
                appender(path, write, r * 10_000)
            finally:
                os._exit(1)
        os.close(write)
        if r % 5 == 0:  # anywhere: while starting, opening or creating the file
            time.sleep(rng.uniform(0.0, 0.02))
        else:  # at a random point among appends
            select.select([read], [], [], 5)
            time.sleep(rng.uniform(0.0, 0.006))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        got = drain(read)
        os.close(read)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            problems.append(f"round {r}: the appender ended by itself ({status})")
        mid_append += bool(got)
        for seq, digest in got:
            if seq in acked:
                problems.append(f"round {r}: seq {seq} acknowledged twice")
            acked[seq] = digest
        why = check(path, acked)
        if why:
            problems.append(f"round {r}: {why}")
            break
    print(json.dumps({"rounds": rounds, "acked": len(acked), "rounds_with_appends": mid_append,
                      "max_seq": max(acked, default=0), "problems": problems}))  # fmt: skip


if __name__ == "__main__":
    main()
