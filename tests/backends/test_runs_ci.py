"""RunsFolderCI: the documented run record schema, JUnit reports, tolerant indexing."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _fixtures_data import context

import console.backends.runs_ci as runs_ci
from console.backends.runs_ci import RunsFolderCI, junit_counts
from console.domain import CIConclusion, CIStatus
from console.plugins.options import RunsFolderConfig
from console.ports import CIProvider, InvalidResponse, NotFound, Unreachable

SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "a1b2c3d9999999999999999999999999999999ff"
SHA_C = "c0ffee0000000000000000000000000000000000"

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="unit" tests="3" failures="1" errors="0">
    <testcase name="a"/><testcase name="b"><failure message="x"/></testcase>
    <testcase name="c"><skipped/></testcase>
  </testsuite>
  <testsuite name="int"><testcase name="d"><error message="boom"/></testcase></testsuite>
</testsuites>
"""


def run(n: int, commit: str = SHA_A, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": n,
        "pipeline": "train",
        "commit": commit,
        "status": "completed",
        "conclusion": "success",
        "started_at": f"2024-05-01T10:{n:02d}:00Z",
        "finished_at": f"2024-05-01T10:{n:02d}:30Z",
        "url": f"https://ci.example/runs/{n}",
        "actor": "ada",
    }
    record.update(extra)
    return record


def write(folder: Path, name: str, record: Any) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / ".ci-runs"


@pytest.fixture
def ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunsFolderCI:
    monkeypatch.setattr(runs_ci, "RECHECK_SECONDS", 0.0)  # look at the folder on every call
    return RunsFolderCI(RunsFolderConfig(), context(tmp_path))


async def test_runs_for_a_commit_newest_first(folder: Path, ci: RunsFolderCI) -> None:
    assert isinstance(ci, CIProvider) and ci.name == "runs-folder"
    write(folder, "1.json", run(1))
    write(folder, "3.json", run(3, conclusion="failure", extra_field={"ignored": True}))
    write(folder, "2.json", run(2, commit=SHA_C))
    write(
        folder,
        "4.json",
        run(4, status="queued", conclusion=None, started_at=None, finished_at=None),
    )
    write(folder, "5.json", run(5, started_at="2024-05-01T09:00:00")).touch()  # naive → UTC
    write(folder, "notes.txt", "not a run")
    runs = await ci.runs_for(SHA_A)
    assert [r.id for r in runs] == ["4", "3", "1", "5"]
    assert runs[0].status is CIStatus.QUEUED and runs[0].conclusion is None
    assert runs[1].conclusion is CIConclusion.FAILURE and runs[1].url.endswith("/3")
    assert runs[3].started_at == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert [r.id for r in await ci.runs_for(SHA_C.upper())] == ["2"]
    assert await ci.runs_for("f" * 40) == []


async def test_prefix_matching(folder: Path, ci: RunsFolderCI) -> None:
    write(folder, "1.json", run(1, commit=SHA_A))
    write(folder, "2.json", run(2, commit=SHA_B))
    write(folder, "3.json", run(3, commit=SHA_C[:8]))  # a record with an abbreviated sha
    assert [r.id for r in await ci.runs_for(SHA_A[:10])] == ["1"]
    assert [r.id for r in await ci.runs_for(SHA_C)] == ["3"]
    with pytest.raises(NotFound, match="ambiguous"):
        await ci.runs_for(SHA_A[:7])
    with pytest.raises(NotFound, match="too short"):
        await ci.runs_for("a1b2")


async def test_bad_records_are_skipped_and_reported(folder: Path, ci: RunsFolderCI) -> None:
    write(folder, "good.json", run(1))
    write(folder, "broken.json", "{not json")
    write(folder, "partial.json", {k: v for k, v in run(2).items() if k != "commit"})
    write(folder, "wrong.json", run(3, status="done", commit="zzz"))
    assert [r.id for r in await ci.runs_for(SHA_A)] == ["1"]
    problems = ci.problems
    assert len(problems) == 3
    assert any("broken.json: not valid JSON" in p for p in problems)
    assert any("partial.json: commit: field required" in p for p in problems)
    assert any("wrong.json" in p and "status" in p and "commit" in p for p in problems)
    text = await ci.check()
    assert "1 CI runs" in text and "3 problem(s)" in text


async def test_every_record_bad_is_an_error(folder: Path, ci: RunsFolderCI) -> None:
    write(folder, "a.json", "[]")
    write(folder, "b.json", {"id": 1})
    with pytest.raises(InvalidResponse, match="none of the 2 run files") as err:
        await ci.runs_for(SHA_A)
    assert "runs-folder.md" in str(err.value)


async def test_missing_folder(ci: RunsFolderCI, folder: Path) -> None:
    assert await ci.runs_for(SHA_A) == []
    with pytest.raises(Unreachable) as err:
        await ci.check()
    assert str(folder) in str(err.value) and "mkdir -p" in str(err.value)
    write(folder, "1.json", run(1))  # created later: picked up
    assert len(await ci.runs_for(SHA_A)) == 1


async def test_junit_reports(folder: Path, ci: RunsFolderCI) -> None:
    write(folder, "reports/unit.xml", JUNIT)
    write(folder, "reports/evil.xml", '<!DOCTYPE x [<!ENTITY a "b">]><testsuite tests="1"/>')
    write(folder, "reports/short.xml", '<testsuite tests="7" failures="1" errors="1"/>')
    jobs = [
        {"name": "lint", "status": "completed", "conclusion": "success"},
        {"name": "unit", "conclusion": "failure", "junit": "reports/unit.xml", "x": 1},
        {"name": "evil", "junit": "reports/evil.xml"},
        {"name": "escape", "junit": "../../etc/passwd"},
    ]
    write(folder, "1.json", run(1, jobs=jobs))
    write(folder, "2.json", run(2, junit="reports/short.xml"))
    first = (await ci.runs_for(SHA_A))[-1]
    by_name = {j.name: j for j in first.jobs}
    assert (by_name["unit"].tests_total, by_name["unit"].tests_failed) == (4, 2)
    assert by_name["unit"].conclusion is CIConclusion.FAILURE
    assert by_name["lint"].tests_total is None
    assert by_name["evil"].tests_total is None and by_name["escape"].tests_total is None
    second = (await ci.runs_for(SHA_A))[0]
    assert [(j.name, j.tests_total, j.tests_failed) for j in second.jobs] == [("tests", 7, 2)]
    assert second.jobs[0].conclusion is CIConclusion.SUCCESS
    problems = "\n".join(ci.problems)
    assert "DTD" in problems and "outside the runs folder" in problems


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (JUNIT, (4, 2)),
        ('<testsuite tests="2" failures="0" errors="1"></testsuite>', (2, 1)),
        (
            '<testsuites><testsuite tests="2"/><testsuite tests="3" failures="3"/></testsuites>',
            (5, 3),
        ),
        ("<html/>", ValueError),
        ("<testsuite>", ValueError),
        ('<!DOCTYPE lolz [<!ENTITY lol "lol">]><testsuite/>', ValueError),
    ],
)
def test_junit_counts(tmp_path: Path, xml: str, expected: Any) -> None:
    path = write(tmp_path, "r.xml", xml)
    if expected is ValueError:
        with pytest.raises(ValueError):
            junit_counts(path)
    else:
        assert junit_counts(path) == expected


async def test_reindexes_only_on_change(
    folder: Path, ci: RunsFolderCI, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "1.json", run(1))
    live = write(folder, "2.json", run(2, status="in_progress", conclusion=None, finished_at=None))
    parsed: list[str] = []
    original = ci._parse

    def counting(path: Path, mtime_ns: int, size: int) -> Any:
        parsed.append(path.name)
        return original(path, mtime_ns, size)

    monkeypatch.setattr(ci, "_parse", counting)
    assert len(await ci.runs_for(SHA_A)) == 2
    assert sorted(parsed) == ["1.json", "2.json"]
    parsed.clear()
    assert len(await ci.runs_for(SHA_A)) == 2
    assert parsed == []
    write(folder, "3.json", run(3))
    assert len(await ci.runs_for(SHA_A)) == 3
    assert parsed == ["3.json"]  # the others were kept
    parsed.clear()
    live.write_text(json.dumps(run(2, status="completed", extra_padding="x" * 10)))  # in place
    stamp = time.time() + 5
    os.utime(live, (stamp, stamp))
    runs = await ci.runs_for(SHA_A)
    assert parsed == ["2.json"]
    assert {r.id: r.status for r in runs}["2"] is CIStatus.COMPLETED


async def test_thousands_of_runs_stay_fast(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder.mkdir()
    for n in range(2000):
        sha = f"{n:040x}"
        (folder / f"{n}.json").write_text(json.dumps(run(n % 60, commit=sha, id=n)))
    ci = RunsFolderCI(RunsFolderConfig(), context(tmp_path))  # default re-check interval
    assert [r.id for r in await ci.runs_for(f"{1234:040x}")] == ["1234"]
    found = await asyncio.gather(*(ci.runs_for(f"{n:040x}") for n in range(2000)))
    assert all(len(runs) == 1 for runs in found)  # speed is measured in bench/


async def test_unchanged_settled_folder_is_not_listed(
    folder: Path, ci: RunsFolderCI, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "1.json", run(1))
    monkeypatch.setattr(runs_ci, "SETTLED_NS", 0)
    assert len(await ci.runs_for(SHA_A)) == 1
    listed: list[Path] = []
    real = os.scandir

    def spy(path: Any) -> Any:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(runs_ci.os, "scandir", spy)
    assert len(await ci.runs_for(SHA_A)) == 1
    assert listed == []
    write(folder, "2.json", run(2))
    stamp = time.time() + 5  # a new entry moves the folder's mtime
    os.utime(folder, (stamp, stamp))
    assert len(await ci.runs_for(SHA_A)) == 2
    assert len(listed) == 1


async def test_a_restart_parses_only_what_changed_since_the_last_session(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "1.json", run(1))
    write(folder, "2.json", run(2, commit=SHA_C))
    write(folder, "bad.json", "{not json")
    write(folder, "j.json", run(4, junit="r.xml"))
    write(folder, "r.xml", JUNIT)
    first = RunsFolderCI(RunsFolderConfig(), context(tmp_path))
    assert [r.id for r in await first.runs_for(SHA_A)] == ["4", "1"]
    write(folder, "3.json", run(3))  # written while no console runs
    second = RunsFolderCI(RunsFolderConfig(), context(tmp_path))
    parsed: list[str] = []
    original = second._parse

    def counting(path: Path, mtime_ns: int, size: int) -> Any:
        parsed.append(path.name)
        return original(path, mtime_ns, size)

    monkeypatch.setattr(second, "_parse", counting)
    runs = await second.runs_for(SHA_A)
    assert [r.id for r in runs] == ["4", "3", "1"]
    assert sorted(parsed) == ["3.json", "j.json"]  # JUnit counts are read again, not kept
    assert runs[0].jobs[-1].tests_total == 4
    assert [r.id for r in await second.runs_for(SHA_C)] == ["2"]
    assert any("bad.json" in p for p in second.problems)  # what was wrong is kept too


async def test_a_damaged_or_foreign_saved_index_is_ignored(folder: Path, tmp_path: Path) -> None:
    write(folder, "1.json", run(1))
    ctx = context(tmp_path)
    saved = Path(ctx.state_dir) / "ci-index.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    for junk in ("{", "[]", '{"version": 1, "folder": "/elsewhere", "runs": []}',
                 json.dumps({"version": 1, "folder": str(folder.resolve()),
                             "runs": [["1.json", 1, 2, SHA_C, True, "x", 0, "1", ""]]})):  # fmt: skip
        saved.write_text(junk)
        ci = RunsFolderCI(RunsFolderConfig(), ctx)
        assert [r.id for r in await ci.runs_for(SHA_A)] == ["1"]


async def test_a_saved_index_pointing_a_commit_at_another_file_shows_no_false_run(
    folder: Path, tmp_path: Path
) -> None:
    write(folder, "1.json", run(1))
    first = RunsFolderCI(RunsFolderConfig(), context(tmp_path))
    assert len(await first.runs_for(SHA_A)) == 1
    saved = Path(context(tmp_path).state_dir) / "ci-index.json"
    doc = json.loads(saved.read_text())
    doc["runs"][0][3] = SHA_C  # the index now claims 1.json is a run of SHA_C
    saved.write_text(json.dumps(doc))
    second = RunsFolderCI(RunsFolderConfig(), context(tmp_path))
    assert await second.runs_for(SHA_C) == []  # the file says SHA_A: no run is invented


async def test_runs_for_many_is_runs_for_of_each_in_one_look(
    folder: Path, ci: RunsFolderCI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One look at the folder and one thread hop for many commits; a commit whose look-up
    fails (too short, ambiguous) fails alone."""
    write(folder, "1.json", run(1, commit=SHA_A))
    write(folder, "2.json", run(2, commit=SHA_B))
    write(folder, "3.json", run(3, commit=SHA_C[:8]))
    asked = [SHA_A, SHA_C, SHA_A[:7], "abc", "f" * 40, SHA_B]
    hops = 0
    to_thread = asyncio.to_thread

    async def counting(fn: Any, *args: Any) -> Any:
        nonlocal hops
        hops += 1
        return await to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    got = await ci.runs_for_many(asked)
    assert hops == 2  # indexing the folder, then reading the runs' files
    assert [r.id for r in got[SHA_A]] == ["1"] and [r.id for r in got[SHA_C]] == ["3"]
    assert got["f" * 40] == [] and [r.id for r in got[SHA_B]] == ["2"]
    assert isinstance(got[SHA_A[:7]], NotFound) and "ambiguous" in str(got[SHA_A[:7]])
    assert isinstance(got["abc"], NotFound) and "too short" in str(got["abc"])
    for commit in (SHA_A, SHA_C, "f" * 40):
        assert got[commit] == await ci.runs_for(commit)
