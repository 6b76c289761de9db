"""The long-lived ``git cat-file --batch``: many concurrent reads share one process and one round
trip (pipelined), each gets its own answer, and a git that hangs or dies fails the reads waiting
on it and leaves the next read a fresh process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from console.git.cmd import CatFile, Trees
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


# -- batches ------------------------------------------------------------------------------------


async def test_many_writes_a_batch_at_once_and_answers_each_in_order(repo: Path) -> None:
    cat = CatFile(repo)
    try:
        specs = [f"HEAD:f{i}.txt" for i in range(FILES)] + ["HEAD:nope.txt", "HEAD", "HEAD:"]
        got = await cat.many(specs)
        assert [g.data if g else None for g in got[:FILES]] == [
            f"file {i}\n".encode() * (i + 1) for i in range(FILES)
        ]
        assert got[FILES] is None
        assert got[FILES + 1] is not None and got[FILES + 1].type == "commit"
        assert got[FILES + 2] is not None and got[FILES + 2].type == "tree"
        assert len({g.oid for g in got if g}) == len(got) - 1  # every object's own id
        # a batch and single reads interleave on the one process, each answered rightly
        single = asyncio.gather(*(cat.read("HEAD", f"f{i}.txt") for i in range(3)))
        again, first = await asyncio.gather(cat.many(specs[:5]), single)
        assert [g.data for g in again if g] == [f"file {i}\n".encode() * (i + 1) for i in range(5)]
        assert first == [f"file {i}\n".encode() * (i + 1) for i in range(3)]
        assert len(cat_pids(repo)) == 1 and cat.requests == len(specs) + 5 + 3
    finally:
        await cat.aclose()


async def test_a_batch_given_up_leaves_its_answers_to_be_skipped(repo: Path) -> None:
    cat = CatFile(repo)
    try:
        task = asyncio.create_task(cat.many([f"HEAD:f{i}.txt" for i in range(FILES)]))
        await asyncio.sleep(0)
        task.cancel()
        assert await cat.read("HEAD", "f7.txt") == b"file 7\n" * 8
    finally:
        await cat.aclose()


def big_tree_repo(path: Path, commits: int = 6, files: int = 40) -> tuple[Path, list[str]]:
    """``data/`` holds ``files`` files no commit changes; each commit changes ``models/mN``."""
    import subprocess

    from tests.gittools import git_env

    env = git_env({"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com",
                   "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com"})  # fmt: skip
    subprocess.run(["git", "init", "-q", str(path)], check=True, env=env)
    (path / "data").mkdir()
    for i in range(files):
        (path / "data" / f"d{i}.dvc").write_text(f"outs: [{{md5: {i}, path: d{i}}}]\n")
    shas = []
    for c in range(commits):
        (path / "models" / f"m{c}").mkdir(parents=True)
        (path / "models" / f"m{c}" / "metrics.json").write_text(f'{{"auc": {c}}}')
        subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(path), "commit", "-qm", f"c{c}"], check=True, env=env)
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, env=env,
                             capture_output=True, text=True)  # fmt: skip
        shas.append(out.stdout.strip())
    return path, shas


async def test_trees_read_a_shared_folder_once_and_ask_git_the_rest(tmp_path: Path) -> None:
    """6 commits x 40 files in an unchanged ``data/``: that tree is read once, by its id; a
    path through a tree only one look-up uses is asked of git whole, and comes with its blob."""
    repo, shas = big_tree_repo(tmp_path / "r")
    cat = CatFile(repo)
    sent: list[list[str]] = []
    many = cat.many

    async def recording(specs: list[str]) -> list[Any]:
        sent.append(list(specs))
        return await many(specs)

    cat.many = recording  # type: ignore[method-assign]
    trees = Trees(cat)
    try:
        wanted = [(s, f"data/d{i}.dvc") for s in shas for i in range(40)]
        wanted += [(s, f"models/m{c}/metrics.json") for c, s in enumerate(shas)]
        wanted += [(shas[0], "models/m5/metrics.json"), (shas[0], "data/nope"), ("0" * 40, "x")]
        found, missing = await trees.resolve(wanted)
        assert missing == {"0" * 40}
        assert found[(shas[0], "models/m5/metrics.json")] is None  # not there yet
        assert found[(shas[0], "data/nope")] is None and found[("0" * 40, "x")] is None
        for c, s in enumerate(shas):
            entry = found[(s, f"models/m{c}/metrics.json")]
            assert entry is not None and entry.data == f'{{"auc": {c}}}'.encode()
        blobs = {found[(s, "data/d3.dvc")] for s in shas}
        assert len(blobs) == 1  # the same blob at every commit
        (blob,) = blobs
        assert blob is not None and blob.data is None  # through a tree read whole: id only
        assert await trees.blobs([blob.oid]) == {blob.oid: b"outs: [{md5: 3, path: d3}]\n"}
        asked = [s for batch in sent for s in batch]
        assert len(sent) <= 7 and len(asked) == len(set(asked))  # 3 levels, 2 batches each
        data_reads = [s for s in asked if ":" not in s and not s.endswith("^{commit}")]
        assert len(data_reads) == len(shas) + 1 + 1  # the root trees, `data/`, the blob
        # known now: a second resolution asks git for nothing but what was never read
        sent.clear()
        again, _ = await trees.resolve([(s, "data/d7.dvc") for s in shas])
        assert [s for b in sent for s in b] == [] and all(e is not None for e in again.values())
    finally:
        await cat.aclose()
