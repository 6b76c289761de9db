"""The GTO tag snapshot saved between processes (console.backends.gto_tagcache).

A saved file is used only for exactly the refs it was read from; every change of the tags
(loose or packed) sends the next read back to git; a bad file is ignored and replaced; a racy
snapshot is never saved; a cache folder that can not be written changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from console.backends import gto_snapshot, gto_tagcache
from console.backends.gto_registry import GtoRegistry
from console.backends.gto_snapshot import Snapshot, read_snapshot, tag_dirs
from console.plugins.options import GtoConfig

T0 = 1_710_000_000


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cache folder."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def git_reads(monkeypatch) -> list[tuple[str, ...]]:
    """The ``for-each-ref`` calls read_snapshot makes."""
    calls: list[tuple[str, ...]] = []
    original = gto_snapshot.run_git

    async def counting(repo, *args, **kwargs):
        if "for-each-ref" in args:
            calls.append(args)
        return await original(repo, *args, **kwargs)

    monkeypatch.setattr(gto_snapshot, "run_git", counting)
    return calls


def age_refs(repo) -> None:
    """Every ref file and directory an hour old (a different hour on each call): the snapshot
    read next is not racy."""
    old = time.time() - 3600
    git_dir = repo.path / ".git"
    for root, dirs, files in os.walk(git_dir / "refs"):
        for name in [*dirs, *files]:
            os.utime(os.path.join(root, name), (old, old))
        os.utime(root, (old, old))
    if (git_dir / "packed-refs").exists():
        os.utime(git_dir / "packed-refs", (old, old))


def tag_at(repo, name: str, rev: str, at: str, *, tagger: str = "Alice", msg: str = "") -> None:
    """An annotated tag with a tagger date in any time zone (``"1710000000 +0130"``)."""
    env = {"GIT_COMMITTER_NAME": tagger, "GIT_COMMITTER_DATE": at}
    repo.git("tag", "-a", "-f", name, rev, "-m", msg or name, env=env)


@pytest.fixture
def rich(git_repo):
    """Several artifacts with every kind of GTO tag, lightweight and foreign tags, time zones."""
    repo = git_repo()
    c = [repo.commit(f"c{i}") for i in range(5)]
    tree = repo.git("rev-parse", "HEAD^{tree}")
    tag_at(repo, "m@v1.0.0", c[0], f"{T0} +0000")
    tag_at(repo, "m@v1.1.0", c[1], f"{T0 + 10} +0130", tagger="Zoë Ünïcode")
    tag_at(repo, "m#staging#1", c[1], f"{T0 + 20} -0800", msg="promote\n\nwith a body")
    tag_at(repo, "m#prod#2", c[0], f"{T0 + 30} +0545")
    tag_at(repo, "m#prod!#3", c[0], f"{T0 + 40} +0000")
    tag_at(repo, "m@v1.0.0!", c[0], f"{T0 + 50} +0000")
    tag_at(repo, "m#dev#4", c[3], f"{T0 + 60} +0000")  # a commit with no version
    tag_at(repo, "old@v0.1.0", c[2], f"{T0 + 5} +0000")
    tag_at(repo, "old@deprecated", c[2], f"{T0 + 70} +0000")
    tag_at(repo, "team/x@v2.0.0", c[4], f"{T0 + 80} +0000")  # a loose tag in a subdirectory
    tag_at(repo, "models=cls@v0.0.1", c[4], f"{T0 + 90} +0000")  # dir:name artifact
    tag_at(repo, "v1.0", c[0], f"{T0 + 95} +0000")  # annotated, not GTO
    tag_at(repo, "tree@v9.9.9", tree, f"{T0 + 96} +0000")  # GTO name on a tree: ignored
    repo.lightweight_tag("release-1", c[0])
    repo.lightweight_tag("m#prod#9", c[1])  # lightweight: counts, is no event
    age_refs(repo)
    return repo, c


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert a._events == b._events and a._counters == b._counters and a._names == b._names
    for name in a._names:
        assert a.has_tag(name) and b.has_tag(name)
        ea, eb = a.event(name), b.event(name)
        assert ea == eb
        if ea is not None and eb is not None:
            assert ea.at.utcoffset() == eb.at.utcoffset() and ea.at.isoformat() == eb.at.isoformat()
    assert a.artifacts() == b.artifacts()
    for artifact in a.artifacts():
        assert a.state(artifact) == b.state(artifact)
        assert a.counter(artifact) == b.counter(artifact)
        assert a.model_versions(artifact) == b.model_versions(artifact)
        assert a.history(artifact) == b.history(artifact)


async def read(repo) -> Snapshot:
    return await read_snapshot(repo.path, repo.path / ".git", 10.0)


def saved_file(repo) -> Path:
    return gto_tagcache.cache_file(repo.path / ".git")


# -- (a) the same snapshot, with or without git -------------------------------------------------


async def test_saved_snapshot_equals_one_read_from_git(rich, git_reads, cache_home):
    repo, _ = rich
    from_git = await read(repo)
    assert len(git_reads) == 1 and not from_git.racy
    path = saved_file(repo)
    assert path.is_file() and path.is_relative_to(cache_home / "cd4ml-console")
    assert not path.is_relative_to(repo.path)
    loaded = await read(repo)
    assert len(git_reads) == 1  # no git at all
    assert_same(from_git, loaded)
    assert loaded.is_current()
    assert set(loaded.artifacts()) == {"m", "old", "team/x", "models:cls"}
    assert loaded.counter("m") == 9 and not loaded.has_tag("nothing")
    assert loaded.state("old").deprecated
    staging = loaded.state("m").stages["staging"]
    assert staging.version == "v1.1.0" and staging.event.at.isoformat().endswith("-08:00")
    assert loaded.model_versions("m")[-1].created_by == "Zoë Ünïcode"


async def test_saved_false_always_reads_git(rich, git_reads):
    repo, _ = rich
    first = await read(repo)
    again = await read_snapshot(repo.path, repo.path / ".git", 10.0, saved=False)
    assert len(git_reads) == 2
    assert_same(first, again)


async def test_a_new_registry_starts_from_the_saved_snapshot(rich, git_reads, backend_ctx):
    repo, _ = rich
    first = GtoRegistry(GtoConfig(), backend_ctx(repo.path))
    versions, stages = await first.versions("m"), await first.stages("m")
    second = GtoRegistry(GtoConfig(), backend_ctx(repo.path))  # as in the next process
    assert await second.versions("m") == versions and await second.stages("m") == stages
    assert await second.history("m") == await first.history("m")
    assert len(git_reads) == 1


async def test_the_file_is_keyed_by_the_resolved_git_dir(rich, tmp_path):
    repo, _ = rich
    link = tmp_path / "link"
    link.symlink_to(repo.path)
    assert gto_tagcache.cache_file(link / ".git") == saved_file(repo)
    assert gto_tagcache.cache_file(tmp_path / "other" / ".git") != saved_file(repo)


# -- (b) every change of the tags invalidates it ------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
@pytest.mark.parametrize("change", ["add", "delete", "move", "add-in-new-subdirectory"])
async def test_a_changed_tag_invalidates_the_saved_snapshot(rich, git_reads, packed, change):
    repo, c = rich
    if packed:
        repo.git("pack-refs", "--all")
        age_refs(repo)
    await read(repo)
    assert saved_file(repo).is_file() and len(git_reads) == 1
    if change == "add":
        tag_at(repo, "m@v3.0.0", c[4], f"{T0 + 100} +0000")
    elif change == "delete":
        repo.git("tag", "-d", "m@v1.1.0")
    elif change == "move":
        tag_at(repo, "m#staging#1", c[2], f"{T0 + 20} -0800", msg="promote\n\nwith a body")
    else:
        tag_at(repo, "team/y/z@v0.0.1", c[4], f"{T0 + 100} +0000")
    if packed:
        repo.git("pack-refs", "--all")
    changed = await read(repo)
    assert len(git_reads) == 2, "the stale file was used"
    names = changed._names
    if change == "add":
        assert "m@v3.0.0" in names
    elif change == "delete":
        assert "m@v1.1.0" not in names
    elif change == "move":
        assert changed.event("m#staging#1").commit == c[2]
    else:
        assert "team/y/z" in changed.artifacts()
    # Settled again: read once more from git, saved, and the saved one is the new state.
    age_refs(repo)
    settled = await read(repo)
    assert len(git_reads) == 3
    assert_same(settled, changed)
    assert_same(await read(repo), changed)
    assert len(git_reads) == 3


# -- (c) a bad file is ignored and replaced ----------------------------------------------------


def _rewrite_header(path: Path, **changes: object) -> None:
    head, _, body = path.read_bytes().partition(b"\n")
    header = json.loads(head) | changes
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def _bad_value(path: Path, column: int, value: object) -> None:
    """Well-formed, right checksum, but a value parse_refs never gives: not from us."""
    head, _, body = path.read_bytes().partition(b"\n")
    doc = json.loads(body)
    row = next(r for r in doc["events"]["m"] if r[1] == "register")
    row[column] = value
    body = json.dumps(doc).encode()
    header = json.loads(head) | {
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-100]),
    "header only": lambda p: p.write_bytes(p.read_bytes().partition(b"\n")[0]),
    "flipped byte": _flip_byte,
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "not json at all": lambda p: p.write_text("import os; os.system('echo pwned')\n"),
    "foreign json": lambda p: p.write_text('{"version": 1}\n{"events": {}}'),
    "a list": lambda p: p.write_text("[1, 2]\n[]"),
    "newer format": lambda p: _rewrite_header(p, version=gto_tagcache.VERSION + 1),
    "other grammar": lambda p: _rewrite_header(p, grammar="0" * 16),
    "other repository": lambda p: _rewrite_header(p, git_dir="/elsewhere/.git"),
    "racy": lambda p: _rewrite_header(p, racy=True),
    "a number for a commit": lambda p: _bad_value(p, 5, 12345),
    "a float timestamp": lambda p: _bad_value(p, 8, 1.5),
    "a register without version": lambda p: _bad_value(p, 2, None),
    "an unknown action": lambda p: _bad_value(p, 1, "promote"),
    "a short row": lambda p: _bad_value(p, slice(3, None), []),
    "oversized": lambda p: os.truncate(p, gto_tagcache.MAX_BYTES + 1),  # sparse: cheap
    "a directory": lambda p: (p.unlink(), p.mkdir()),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_a_bad_file_is_ignored_and_replaced(rich, git_reads, damage, caplog):
    repo, _ = rich
    good = await read(repo)
    path = saved_file(repo)
    DAMAGE[damage](path)
    caplog.set_level(logging.DEBUG, logger="console.backends.gto_tagcache")
    again = await read(repo)
    assert len(git_reads) == 2
    assert_same(again, good)
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)
    if damage != "a directory":  # nothing can replace a directory: it stays ignored
        assert gto_tagcache.load(repo.path / ".git", *_fp(repo)) is not None
        assert_same(await read(repo), good)
        assert len(git_reads) == 2


def _fp(repo) -> tuple[list[Path], tuple]:
    dirs = tag_dirs(repo.path / ".git")
    return dirs, gto_snapshot.fingerprint(repo.path / ".git", dirs)


async def test_another_repositorys_file_is_not_used(rich, git_repo, git_reads):
    repo, _ = rich
    other = git_repo("other")
    other.commit("x")
    tag_at(other, "z@v1.0.0", "HEAD", f"{T0} +0000")
    age_refs(other)
    await read(other)
    os.makedirs(saved_file(repo).parent, exist_ok=True)
    saved_file(other).replace(saved_file(repo))  # as if the hashes collided
    snap = await read(repo)
    assert len(git_reads) == 2 and "m" in snap.artifacts()


# -- (d) racy snapshots are not saved ----------------------------------------------------------


async def test_a_racy_snapshot_is_not_saved(rich, git_reads):
    repo, c = rich
    tag_at(repo, "m@v4.0.0", c[4], f"{T0 + 200} +0000")
    soon = time.time() + 5  # changed "just now" however slow the machine is
    os.utime(repo.path / ".git" / "refs" / "tags", (soon, soon))
    snap = await read(repo)
    assert snap.racy and not snap.is_current()
    assert not saved_file(repo).exists()
    await read(repo)
    assert len(git_reads) == 2


async def test_a_change_after_saving_a_racy_moment_is_seen(rich, git_reads):
    """An old file, then a change: the racy read after it is not saved and the old file is
    not used again."""
    repo, c = rich
    await read(repo)
    tag_at(repo, "m@v4.0.0", c[4], f"{T0 + 200} +0000")
    assert (await read(repo)).has_tag("m@v4.0.0")
    assert (await read(repo)).has_tag("m@v4.0.0")
    assert len(git_reads) == 3


async def test_a_snapshot_bigger_than_the_cap_is_not_saved(rich, git_reads, monkeypatch):
    repo, _ = rich
    monkeypatch.setattr(gto_tagcache, "MAX_BYTES", 1000)
    await read(repo)
    assert not saved_file(repo).exists()


# -- (e) a cache folder that can not be written ------------------------------------------------


async def test_an_unwritable_cache_folder_changes_nothing(rich, git_reads, cache_home, caplog):
    repo, _ = rich
    cache_home.write_text("not a folder")  # mkdir under it fails
    caplog.set_level(logging.DEBUG, logger="console.backends.gto_tagcache")
    first, second = await read(repo), await read(repo)
    assert_same(first, second)
    assert len(git_reads) == 2
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)


async def test_a_failed_replace_leaves_no_temp_file(rich, git_reads, monkeypatch):
    repo, _ = rich

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gto_tagcache.os, "replace", refuse)
    await read(repo)
    folder = saved_file(repo).parent
    assert list(folder.iterdir()) == []


# -- writers at once ----------------------------------------------------------------------------


async def test_concurrent_writers_never_leave_a_broken_file(rich):
    """Threads saving two different snapshots over one file while another reads it: every
    read gets nothing or one of the two whole snapshots."""
    repo, _ = rich
    git_dir = repo.path / ".git"
    dirs, fp = _fp(repo)
    snap = await read(repo)
    small = ({"m": snap._events["m"][:1]}, {"m": 1}, {snap._events["m"][0].name})
    full = (snap._events, snap._counters, snap._names)
    stop = threading.Event()
    seen: list[object] = []

    def writer(parsed) -> None:
        while not stop.is_set():
            gto_tagcache.save(git_dir, dirs, fp, *parsed)

    def reader() -> None:
        for _ in range(200):
            seen.append(gto_tagcache.load(git_dir, dirs, fp))

    threads = [threading.Thread(target=writer, args=(p,)) for p in (small, full, small)]
    for t in threads:
        t.start()
    try:
        reader()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and all(s in (small, full) for s in seen)
    assert [p.name for p in saved_file(repo).parent.iterdir()] == [saved_file(repo).name]


async def test_old_and_stray_files_are_pruned_when_saving(rich):
    repo, _ = rich
    await read(repo)
    folder = saved_file(repo).parent
    gone = [folder / ("0" * 24 + ".json"), folder / "x.json.1.ab.tmp"]
    kept = [folder / ("1" * 24 + ".json"), folder / "y.json.1.ab.tmp"]
    for path in [*gone, *kept]:
        path.write_text("{}")
    old = time.time() - gto_tagcache.MAX_AGE - 10
    os.utime(gone[0], (old, old))
    os.utime(gone[1], (time.time() - 120, time.time() - 120))
    os.utime(saved_file(repo), (old, old))  # ours: replaced, not lost
    age_refs(repo)
    await read(repo)
    assert sorted(folder.iterdir()) == sorted([*kept, saved_file(repo)])
