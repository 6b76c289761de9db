"""GitCodeRepo on real repositories made by the git_repo fixture."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.backends.git_code import MAX_COMMITS, GitCodeRepo
from console.plugins.options import GitConfig
from console.ports import CodeRepo, NotFound, Unreachable


@pytest.fixture
def history(git_repo):
    repo = git_repo()
    shas = [
        repo.commit("add data", {"data.csv": "a,b\n1,2\n"}, author="Alice"),
        repo.commit("train model", {"train.py": "print(1)\n"}, author="Bob"),
        repo.commit(
            "tune", {"train.py": "print(2)\nprint(3)\n", "data.csv": "a\n"}, author="Carol"
        ),
    ]
    return repo, shas


def make(repo, backend_ctx, path=None):
    return GitCodeRepo(GitConfig(path=path), backend_ctx(repo.path))


async def test_is_a_code_repo(history, backend_ctx):
    repo, _ = history
    code = make(repo, backend_ctx)
    assert isinstance(code, CodeRepo)
    assert code.name == "git"


async def test_check_names_head_and_branch(history, backend_ctx):
    repo, shas = history
    text = await make(repo, backend_ctx).check()
    assert str(repo.path) in text
    assert shas[-1][:7] in text
    assert "on main" in text


async def test_check_empty_repo(git_repo, backend_ctx):
    repo = git_repo("empty")
    assert "no commits yet" in await make(repo, backend_ctx).check()


async def test_check_not_a_repo(tmp_path, backend_ctx):
    folder = tmp_path / "plain"
    folder.mkdir()
    code = GitCodeRepo(GitConfig(), backend_ctx(folder))
    with pytest.raises(Unreachable, match="not a git repository"):
        await code.check()


async def test_relative_path_is_under_workspace(history, backend_ctx):
    repo, shas = history
    code = GitCodeRepo(GitConfig(path=repo.path.name), backend_ctx(repo.path.parent))
    assert (await code.commit("HEAD")).sha == shas[-1]


async def test_commit_fields(history, backend_ctx):
    repo, shas = history
    commit = await make(repo, backend_ctx).commit(shas[1])
    assert commit.sha == shas[1]
    assert commit.short == shas[1][:8]
    assert commit.author == "Bob"
    assert commit.author_email == "bob@example.com"
    assert commit.subject == "train model"
    assert commit.authored_at == datetime(2024, 1, 1, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize("rev", ["HEAD", "main", "HEAD~0"])
async def test_commit_by_name(history, backend_ctx, rev):
    repo, shas = history
    assert (await make(repo, backend_ctx).commit(rev)).sha == shas[-1]


@pytest.mark.parametrize("rev", ["nope", "0" * 40, "HEAD~10", "-n", ""])
async def test_unknown_commit_is_not_found(history, backend_ctx, rev):
    repo, _ = history
    with pytest.raises(NotFound):
        await make(repo, backend_ctx).commit(rev)


async def test_commit_is_cached_by_sha(history, backend_ctx):
    repo, shas = history
    code = make(repo, backend_ctx)
    first = await code.commit(shas[0])
    code.path = repo.path / "gone"  # a second git call would now fail
    assert await code.commit(shas[0]) is first


async def test_commits_between_newest_first(history, backend_ctx):
    repo, shas = history
    code = make(repo, backend_ctx)
    between = await code.commits_between(shas[0], shas[2])
    assert [c.sha for c in between] == [shas[2], shas[1]]
    assert [c.author for c in between] == ["Carol", "Bob"]
    assert await code.commits_between(shas[2], shas[2]) == ()


async def test_commits_between_without_base_is_all_history(history, backend_ctx):
    repo, shas = history
    between = await make(repo, backend_ctx).commits_between(None, "HEAD")
    assert [c.sha for c in between] == shas[::-1]


async def test_commits_between_unknown_rev(history, backend_ctx):
    repo, shas = history
    with pytest.raises(NotFound):
        await make(repo, backend_ctx).commits_between("nope", shas[0])


async def test_commits_between_is_capped(git_repo, backend_ctx):
    repo = git_repo()
    base = repo.commit("base")
    # Many commits cheaply: one fast-import stream of empty commits.
    stream = []
    for i in range(MAX_COMMITS + 20):
        msg = f"c{i}".encode()
        stream.append(
            b"commit refs/heads/main\n"
            + f"committer Bob <bob@example.com> {1_704_100_000 + i} +0000\n".encode()
            + f"data {len(msg)}\n".encode()
            + msg
            + b"\n"
            + (f"from {base}\n".encode() if i == 0 else b"")
            + b"\n"
        )
    repo.git("fast-import", "--quiet", "--date-format=raw", "--force", input=b"".join(stream))
    between = await make(repo, backend_ctx).commits_between(base, "main")
    assert len(between) == MAX_COMMITS
    assert between[0].subject == f"c{MAX_COMMITS + 19}"


async def test_diffstat(history, backend_ctx):
    repo, shas = history
    code = make(repo, backend_ctx)
    stat = await code.diffstat(shas[0], shas[2])
    assert (stat.files, stat.insertions, stat.deletions) == (2, 3, 2)
    same = await code.diffstat(shas[2], shas[2])
    assert (same.files, same.insertions, same.deletions) == (0, 0, 0)
    with pytest.raises(NotFound):
        await code.diffstat("nope", shas[2])


async def test_commit_by_sha_and_by_name_agree(history, backend_ctx):
    """A full sha is read through the long-lived cat-file, a name through git log: same facts."""
    repo, shas = history
    by_sha = make(repo, backend_ctx)
    by_name = make(repo, backend_ctx)
    try:
        assert await by_sha.commit(shas[-1]) == await by_name.commit("HEAD")
        assert (await by_sha.commit(shas[0])).author == "Alice"
        with pytest.raises(NotFound):
            await by_sha.commit("f" * 40)
    finally:
        await by_sha.aclose()
        await by_name.aclose()


async def test_commits_many_reads_the_shas_in_one_batch(history, backend_ctx):
    repo, shas = history
    code = make(repo, backend_ctx)
    try:
        got = await code.commits_many([*shas, shas[0], "HEAD", "0" * 40, "--all"])
        assert [got[s].subject for s in shas] == ["add data", "train model", "tune"]
        assert got["HEAD"] == got[shas[-1]] == await code.commit(shas[-1])
        assert isinstance(got["0" * 40], NotFound) and isinstance(got["--all"], NotFound)
        assert code._cat is not None and code._cat.requests == 5  # 4 shas at once, 0*40 again
    finally:
        await code.aclose()
