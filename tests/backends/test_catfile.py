"""The long-lived ``git cat-file --batch``: many concurrent reads share one process and one round
trip (pipelined), each gets its own answer, and a git that hangs or dies fails the reads waiting
on it and leaves the next read a fresh process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from console.backends.gitcmd import CatFile
from console.ports import Unreachable
from tests.gittools import gone, hanging_git, one_commit_repo

FILES = 60


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {f"f{i}.txt": f"file {i}\n" * (i + 1) for i in range(FILES)}
    return one_commit_repo(tmp_path / "repo", {**files, "with space.txt": "spaced"})


def cat_pids(repo: Path) -> set[int]:
    """The pids of running `git cat-file --batch` processes on ``repo``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cat-file" in argv and str(repo).encode() in argv:
            found.add(int(entry.name))
    return found


async def test_concurrent_reads_each_get_their_own_answer_from_one_process(repo: Path) -> None:
    cat = CatFile(repo)
    try:
        specs = [(f"f{i}.txt", f"file {i}\n".encode() * (i + 1)) for i in range(FILES)]
        specs += [("nope.txt", None), ("with space.txt", b"spaced"), ("", None)]  # "" is a tree
        specs = specs * 5
        got = await asyncio.gather(*(cat.read("HEAD", path) for path, _ in specs))
        assert got == [want for _, want in specs]
        commit = await cat.read_commit("HEAD")
        assert commit is not None and commit.startswith(b"tree ")
        assert await cat.read_commit("HEAD:f1.txt") is None  # a blob, not a commit
        assert len(cat_pids(repo)) == 1
    finally:
        await cat.aclose()
    assert cat_pids(repo) == set()


async def test_readers_that_give_up_in_a_queue_do_not_shift_the_answers(repo: Path) -> None:
    cat = CatFile(repo)
    try:
        await cat.read("HEAD", "f0.txt")
        tasks = [asyncio.create_task(cat.read("HEAD", f"f{i}.txt")) for i in range(FILES)]
        await asyncio.sleep(0)
        for task in tasks[::3]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, got in enumerate(results):
            if i % 3 == 0:
                assert isinstance(got, asyncio.CancelledError) or got == f"file {i}\n".encode() * (
                    i + 1
                )
            else:
                assert got == f"file {i}\n".encode() * (i + 1), i
        assert await cat.read("HEAD", "f7.txt") == b"file 7\n" * 8
    finally:
        await cat.aclose()


async def test_a_git_that_dies_fails_the_waiting_reads_and_the_next_read_starts_afresh(
    repo: Path,
) -> None:
    cat = CatFile(repo)
    try:
        assert await cat.read("HEAD", "f1.txt") == b"file 1\n" * 2
        (pid,) = cat_pids(repo)
        os.kill(pid, signal.SIGSTOP)  # the reads queue up behind a process that then dies
        tasks = [asyncio.create_task(cat.read("HEAD", f"f{i}.txt")) for i in range(10)]
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert all(isinstance(r, Unreachable) and "died" in str(r) for r in results), results
        assert await cat.read("HEAD", "f2.txt") == b"file 2\n" * 3
        assert pid not in cat_pids(repo)
    finally:
        await cat.aclose()


async def test_a_hung_git_times_out_from_its_last_answer_and_is_killed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = hanging_git(tmp_path, monkeypatch)  # never answers
    cat = CatFile(repo, timeout=0.5)
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(cat.read("HEAD", f"f{i}.txt") for i in range(10)), return_exceptions=True
        )
        took = time.monotonic() - started
        assert all(isinstance(r, Unreachable) and "timed out" in str(r) for r in results)
        assert took < 3, took  # one timeout (0.5 s) for the queue, not one per read (5 s)
        pid = int(marker.read_text())
        assert await gone(pid), f"the hung git (pid {pid}) still runs"
    finally:
        await cat.aclose()


async def test_an_idle_process_is_not_slow(repo: Path) -> None:
    """The time allowed runs from the last answer or the first read waiting, whichever is
    later: a read after a long idle spell is not timed out at once."""
    cat = CatFile(repo, timeout=0.3)
    try:
        assert await cat.read("HEAD", "f1.txt") == b"file 1\n" * 2
        await asyncio.sleep(0.5)
        assert await cat.read("HEAD", "f2.txt") == b"file 2\n" * 3
    finally:
        await cat.aclose()


async def test_closing_with_unanswered_reads_kills_git_at_once(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal cancels a read on a git that hangs; the shutdown that follows must not wait
    the 2 s a well-behaved git gets to finish (the CLI exits within 2 s of SIGTERM)."""
    marker = hanging_git(tmp_path, monkeypatch)
    cat = CatFile(repo, timeout=30)
    task = asyncio.create_task(cat.read("HEAD", "f1.txt"))
    for _ in range(500):  # the held git has started
        if marker.exists():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    await cat.aclose()
    assert time.monotonic() - started < 1.5
    assert await gone(int(marker.read_text()))
