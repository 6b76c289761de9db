"""A user who may read the SQLite audit log but not write it (nor its folder) reads
everything: with or without a writer's -wal/-shm files present, and sees what a writer adds
after it opened the log. Root ignores file permissions, so the reader runs as ``nobody``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.backends.sqlite_audit import SqliteAuditStore
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig
from tests.osusers import REPO, traversable

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run the reader as another user (CI runs as root)"
)

READER = r"""
import asyncio, json, sys
from pathlib import Path
from console.plugins.options import SqliteAuditConfig
from console.backends.sqlite_audit import SqliteAuditStore
from console.plugins import BackendContext
from tests.osusers import REPO, traversable

async def main():
    path = Path(sys.argv[1])
    ctx = BackendContext(workspace=path.parent, state_dir=path.parent, config=None, timeout=5)
    store = SqliteAuditStore(SqliteAuditConfig(path=str(path)), ctx)
    for line in sys.stdin:  # one read per line, so the test can write in between
        try:
            events = await store.events()
            result = await store.verify()
            said = {"seqs": [e.seq for e in events], "ok": result.ok, "check": await store.check()}
        except Exception as exc:
            said = {"error": str(exc)}
        print(json.dumps(said), flush=True)
    await store.aclose()

asyncio.run(main())
"""


def event(i: int) -> AuditEvent:
    return AuditEvent(
        seq=0, at=datetime(2026, 1, 1, tzinfo=UTC), actor="alice", action="approve", model="m",
        request_id=f"req-{i}",
    )  # fmt: skip


@pytest.fixture
def log_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cd4ml-ro-"))  # pytest's tmp is root-only
    folder.chmod(0o755)
    with traversable():
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


def store_at(path: Path) -> SqliteAuditStore:
    ctx = BackendContext(workspace=path.parent, state_dir=path.parent, config=None, timeout=5)
    return SqliteAuditStore(SqliteAuditConfig(path=str(path)), ctx)


async def append(path: Path, n: int, *, keep_open: bool = False) -> SqliteAuditStore:
    store = store_at(path)
    for i in range(n):
        await store.append(event(i))
    if not keep_open:
        await store.aclose()
    return store


class Reader:
    """The reader process, run as ``nobody``: each ``read()`` asks it to read the log once."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent", "PYTHONPATH": str(REPO)},
        )  # fmt: skip

    def read(self) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("read\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def test_a_reader_reads_a_log_no_writer_has_open(log_dir: Path) -> None:
    path = log_dir / "audit.sqlite"
    asyncio.run(append(path, 3))
    assert not Path(f"{path}-wal").exists()  # the last writer removed its WAL files
    reader = Reader(path)
    try:
        first = reader.read()
        assert first.get("seqs") == [1, 2, 3] and first["ok"], first
        assert "readonly" not in json.dumps(first) and "read-only" in first["check"]
        asyncio.run(append(path, 2))  # a writer comes and goes while the reader has it open
        again = reader.read()
        assert again.get("seqs") == [1, 2, 3, 4, 5] and again["ok"], again
    finally:
        reader.close()
    asyncio.run(append(path, 1))  # the log is still good for writers
    assert asyncio.run(verify(path)) == (True, 6)


def test_a_reader_reads_while_a_writer_has_the_log_open(log_dir: Path) -> None:
    path = log_dir / "audit.sqlite"

    async def scenario() -> tuple[dict, dict]:
        writer = await append(path, 2, keep_open=True)
        reader = Reader(path)
        try:
            first = await asyncio.to_thread(reader.read)
            await writer.append(event(9))
            second = await asyncio.to_thread(reader.read)
        finally:
            reader.close()
            await writer.aclose()
        return first, second

    first, second = asyncio.run(scenario())
    assert first.get("seqs") == [1, 2] and second.get("seqs") == [1, 2, 3], (first, second)


async def verify(path: Path) -> tuple[bool, int]:
    store = store_at(path)
    try:
        result = await store.verify()
    finally:
        await store.aclose()
    return result.ok, result.count
