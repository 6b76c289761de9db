"""GTO tag grammar, registry semantics and the compare-and-set writes, on real repositories."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.backends import gto_registry, gto_snapshot
from console.backends.gto_registry import GtoRegistry
from console.domain import RegistryEventKind
from console.git.gto_tags import (
    Action,
    TagName,
    format_tag,
    is_valid_artifact,
    next_counter,
    parse_tag,
)
from console.plugins.options import GtoConfig
from console.ports import Conflict, ModelRegistry, NotFound, Unreachable

T0 = 1_710_000_000  # 2024-03-09T16:00:00Z

# -- grammar ---------------------------------------------------------------------------------

GRAMMAR = [
    ("m@v1.0.0", TagName("m", Action.REGISTER, version="v1.0.0")),
    ("m@v1.0.0!", TagName("m", Action.DEREGISTER, version="v1.0.0")),
    ("m@v1.0.0#2", TagName("m", Action.REGISTER, version="v1.0.0", counter=2)),
    ("m@v1.0.0!#3", TagName("m", Action.DEREGISTER, version="v1.0.0", counter=3)),
    ("m#prod", TagName("m", Action.ASSIGN, stage="prod")),
    ("m#prod#3", TagName("m", Action.ASSIGN, stage="prod", counter=3)),
    ("m#prod!", TagName("m", Action.UNASSIGN, stage="prod")),
    ("m#prod!#4", TagName("m", Action.UNASSIGN, stage="prod", counter=4)),
    ("m@deprecated", TagName("m", Action.DEPRECATE)),
    ("m@deprecated#9", TagName("m", Action.DEPRECATE, counter=9)),
    ("dir=sub@v1.2.3", TagName("dir:sub", Action.REGISTER, version="v1.2.3")),
    ("a.b/c=d-e#stage_1#12", TagName("a.b/c:d-e", Action.ASSIGN, stage="stage_1", counter=12)),
    ("m@v2.0.0-rc.1+build.5", TagName("m", Action.REGISTER, version="v2.0.0-rc.1+build.5")),
    ("x#y", TagName("x", Action.ASSIGN, stage="y")),
    ("team/model#eu/prod#1", TagName("team/model", Action.ASSIGN, stage="eu/prod", counter=1)),
]  # fmt: skip

NOT_GTO = [
    "v1.0.0",
    "release-2024",
    "m@1.0.0",
    "m@v01.0.0",
    "m@v1.0",
    "m@v1.0.0-01",
    "-m@v1.0.0",
    "m-@v1.0.0",
    "m@created",
    "m#prod#x",
    "m#-prod",
    "x=y=z@v1.0.0",
    "a:b@v1.0.0",
    "m#prod!!",
    "m@deprecated!",
]


@pytest.mark.parametrize(("name", "expected"), GRAMMAR)
def test_parse_and_format_round_trip(name, expected):
    assert parse_tag(name) == expected
    assert (
        format_tag(
            expected.artifact,
            expected.action,
            version=expected.version,
            stage=expected.stage,
            counter=expected.counter,
        )
        == name
    )


@pytest.mark.parametrize("name", NOT_GTO)
def test_not_gto_tags(name):
    assert parse_tag(name) is None


@pytest.mark.parametrize(
    ("artifact", "action", "kwargs"),
    [
        ("-bad", Action.REGISTER, {"version": "v1.0.0"}),
        ("m", Action.REGISTER, {"version": "1.0.0"}),
        ("m", Action.REGISTER, {}),
        ("m", Action.ASSIGN, {"stage": "prod!"}),
        ("m", Action.ASSIGN, {}),
        ("m", Action.ASSIGN, {"stage": "prod", "counter": -1}),
    ],
)
def test_format_refuses_what_gto_refuses(artifact, action, kwargs):
    with pytest.raises(ValueError):
        format_tag(artifact, action, **kwargs)


@pytest.mark.parametrize(
    ("name", "valid"),
    [("m", True), ("churn", True), ("a/b", True), ("dir:name", True), ("d.x/y:n", True),
     ("", False), ("a/", False), ("_a", False), ("a b", False), ("a:b:c", False), ("a=b", False)],
)  # fmt: skip
def test_artifact_names(name, valid):
    assert is_valid_artifact(name) is valid


@pytest.mark.parametrize(
    ("tags", "artifact", "expected"),
    [
        ([], "m", 1),
        (["m@v1.0.0", "m#prod"], "m", 1),
        (["m#prod#1", "m#staging#2", "m@v1.0.0"], "m", 3),
        (["m#prod#1", "other#prod#7"], "m", 2),
        (["m@v1.0.0!#5", "m@deprecated#6"], "m", 7),
        (["dir=sub#prod#4", "sub#prod#9"], "dir:sub", 5),
        (["not-a-tag#x#99"], "m", 1),
    ],
)
def test_next_counter(tags, artifact, expected):
    assert next_counter(tags, artifact) == expected


# -- reading ---------------------------------------------------------------------------------


def make_registry(repo, backend_ctx, **options) -> GtoRegistry:
    return GtoRegistry(GtoConfig(**options), backend_ctx(repo.path))


@pytest.fixture
def commits(git_repo):
    repo = git_repo()
    shas = [repo.commit(f"c{i}", author=("Alice", "Bob", "Carol")[i % 3]) for i in range(6)]
    return repo, shas


async def test_is_a_model_registry(commits, backend_ctx):
    repo, _ = commits
    registry = make_registry(repo, backend_ctx)
    assert isinstance(registry, ModelRegistry)
    assert await registry.check() == f"0 models, 0 versions in git tags at {repo.path}"


async def test_not_a_repository_is_unreachable(tmp_path, backend_ctx):
    folder = tmp_path / "plain"
    folder.mkdir()
    registry = GtoRegistry(GtoConfig(), backend_ctx(folder))
    with pytest.raises(Unreachable, match="not a git repository"):
        await registry.check()
    with pytest.raises(Unreachable):
        await GtoRegistry(GtoConfig(path="missing"), backend_ctx(folder)).models()


async def test_versions_in_semantic_order(commits, backend_ctx):
    repo, shas = commits
    order = ["v1.9.0", "v2.0.0", "v1.10.0", "v2.0.0-rc.1", "v1.2.0", "v2.0.0-alpha"]
    for i, version in enumerate(order):
        repo.tag(f"m@{version}", shas[i], tagger=f"user{i}", at=T0 + i)
    repo.lightweight_tag("m@v9.9.9", shas[0])  # gto ignores lightweight tags
    registry = make_registry(repo, backend_ctx)
    versions = await registry.versions("m")
    assert [v.version for v in versions] == [
        "v1.2.0", "v1.9.0", "v1.10.0", "v2.0.0-alpha", "v2.0.0-rc.1", "v2.0.0",
    ]  # fmt: skip
    first = versions[1]
    assert (first.commit, first.created_by) == (shas[0], "user0")
    assert first.created_at == datetime.fromtimestamp(T0, UTC)
    assert first.tags == {"gto.tag": "m@v1.9.0"}
    assert await registry.check() == f"1 models, 6 versions in git tags at {repo.path}"


# Each scenario: tags written in order (one second apart) as "NAME:COMMIT-INDEX", then where
# prod points (v1 = v1.0.0 at commit 0, v2 = v2.0.0 at commit 1) and the tag that decided it.
STAGE_CASES = [
    ("latest assignment wins", ["m#prod#1:0", "m#prod#2:1"], "v2", "m#prod#2"),
    ("rollback re-assigns", ["m#prod#1:0", "m#prod#2:1", "m#prod#3:0"], "v1", "m#prod#3"),
    ("unassign falls back", ["m#prod#1:0", "m#prod#2:1", "m#prod!#3:1"], "v1", "m#prod#1"),
    ("unassign empties", ["m#prod#1:0", "m#prod!#2:0"], None, "m#prod!#2"),
    ("deregister drops stages", ["m#prod#1:0", "m#prod#2:1", "m@v2.0.0!:1"], "v1", "m#prod#1"),
    ("no counters", ["m#prod:1"], "v2", "m#prod"),
    ("unregistered commit", ["m#prod#1:0", "m#prod#2:2"], "commit2", "m#prod#2"),
]


@pytest.mark.parametrize(
    ("title", "events", "expected", "ref"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES]
)
async def test_stage_semantics(commits, backend_ctx, title, events, expected, ref):
    repo, shas = commits
    repo.tag("m@v1.0.0", shas[0], at=T0)
    repo.tag("m@v2.0.0", shas[1], at=T0 + 1)
    for i, spec in enumerate(events):
        name, index = spec.split(":")
        repo.tag(name, shas[int(index)], tagger=f"user{i}", at=T0 + 10 + i)
    registry = make_registry(repo, backend_ctx)
    (prod,) = await registry.stages("m")
    want = {"v1": "v1.0.0", "v2": "v2.0.0", "commit2": shas[2], None: None}[expected]
    assert (prod.stage, prod.version, prod.ref) == ("prod", want, ref)
    by_version = {v.version: v.stages for v in await registry.versions("m")}
    assert [v for v, stages in by_version.items() if stages] == ([want] if want else [])


async def test_deregistered_and_unregistered_versions(commits, backend_ctx):
    repo, shas = commits
    repo.tag("m@v1.0.0", shas[0], at=T0)
    repo.tag("m@v1.1.0", shas[1], at=T0 + 1)
    repo.tag("m@v1.1.0!", shas[1], at=T0 + 2)
    repo.tag("m#dev#1", shas[3], at=T0 + 3)
    versions = {v.version: v for v in await make_registry(repo, backend_ctx).versions("m")}
    assert versions["v1.1.0"].deregistered
    assert not versions["v1.0.0"].deregistered
    assert versions[shas[3]].tags["gto.registered"] == "false"
    assert versions[shas[3]].stages == ("dev",)


async def test_models_deprecation_and_artifacts_yaml(commits, backend_ctx):
    repo, shas = commits
    repo.commit(
        "index",
        {"artifacts.yaml": "churn:\n  type: model\n  path: models/churn.pkl\n"
         "  description: Churn classifier\n  labels: [tabular, weekly]\nfraud: {}\n"},
    )  # fmt: skip
    repo.tag("churn@v1.0.0", shas[0], at=T0)
    repo.tag("old@v0.1.0", shas[0], at=T0)
    repo.tag("old@deprecated", shas[0], at=T0 + 1)
    repo.tag("nlp=bert@v0.0.1", shas[1], at=T0 + 2)
    repo.tag("back@v1.0.0", shas[0], at=T0)
    repo.tag("back@deprecated", shas[0], at=T0 + 1)
    repo.tag("back@v1.1.0", shas[1], at=T0 + 2)  # a later event revives it, as in gto
    registry = make_registry(repo, backend_ctx)
    models = {m.name: m for m in await registry.models()}
    assert sorted(models) == ["back", "churn", "fraud", "nlp:bert", "old"]
    assert models["churn"].description == "Churn classifier"
    assert models["churn"].path == "models/churn.pkl"
    assert models["churn"].labels == ("tabular", "weekly")
    assert models["old"].deprecated and not models["back"].deprecated
    assert await registry.versions("fraud") == ()
    assert [v.version for v in await registry.versions("nlp:bert")] == ["v0.0.1"]
    with pytest.raises(NotFound, match="no model 'ghost'"):
        await registry.versions("ghost")


async def test_history_oldest_first(commits, backend_ctx):
    repo, shas = commits
    repo.tag("m@v1.0.0", shas[0], tagger="Alice", at=T0, message="first")
    repo.tag("m#prod#1", shas[0], tagger="Bob", at=T0 + 5, message="go live")
    repo.tag("m#prod!#2", shas[0], tagger="Carol", at=T0 + 9)
    repo.tag("m@deprecated", shas[0], tagger="Dan", at=T0 + 20)
    events = await make_registry(repo, backend_ctx).history("m")
    assert [(e.kind, e.version, e.stage, e.actor) for e in events] == [
        (RegistryEventKind.REGISTER, "v1.0.0", None, "Alice"),
        (RegistryEventKind.ASSIGN, "v1.0.0", "prod", "Bob"),
        (RegistryEventKind.UNASSIGN, "v1.0.0", "prod", "Carol"),
        (RegistryEventKind.DEPRECATE, None, None, "Dan"),
    ]
    assert events[1].at == datetime.fromtimestamp(T0 + 5, UTC)
    assert (events[1].ref, events[1].message) == ("m#prod#1", "go live")


# -- writing ---------------------------------------------------------------------------------


@pytest.fixture
def registered(commits):
    repo, shas = commits
    repo.tag("m@v1.0.0", shas[0], tagger="Alice", at=T0)
    repo.tag("m@v1.1.0", shas[1], tagger="Alice", at=T0 + 1)
    repo.tag("m@v1.2.0", shas[2], tagger="Alice", at=T0 + 2)
    return repo, shas


def tag_info(repo, name):
    fields = "%(objecttype) %(*objectname) %(taggername) %(taggeremail) %(taggerdate:unix)"
    kind, target, *rest = repo.git(
        "for-each-ref", f"refs/tags/{name}", f"--format={fields}"
    ).split()
    body = repo.git("for-each-ref", f"refs/tags/{name}", "--format=%(contents)")
    return kind, target, " ".join(rest[:-2]), rest[-2], int(rest[-1]), body


async def test_assign_writes_an_annotated_tag(registered, backend_ctx):
    repo, shas = registered
    registry = make_registry(repo, backend_ctx)
    before = int(time.time())
    result = await registry.assign(
        "m", "v1.1.0", "prod", actor="Eve Example", message="ship it", expected=None
    )
    assert (result.stage, result.version, result.assigned_by, result.ref) == (
        "prod", "v1.1.0", "Eve Example", "m#prod#1",
    )  # fmt: skip
    kind, target, tagger, email, stamp, body = tag_info(repo, "m#prod#1")
    assert (kind, target, tagger, body) == ("tag", shas[1], "Eve Example", "ship it")
    assert email.startswith("<Eve.Example@") and stamp >= before
    assert (await registry.stages("m"))[0].version == "v1.1.0"
    second = await registry.assign("m", "v1.2.0", "prod", actor="eve", expected="v1.1.0")
    assert second.ref == "m#prod#2"
    assert second.assigned_at > result.assigned_at  # kept strictly after, even within a second
    assert "Assigning stage prod" in tag_info(repo, "m#prod#2")[-1]


async def test_assign_same_version_is_a_no_op(registered, backend_ctx):
    repo, _ = registered
    registry = make_registry(repo, backend_ctx)
    await registry.assign("m", "v1.0.0", "prod", actor="eve", expected=None)
    again = await registry.assign("m", "v1.0.0", "prod", actor="eve", expected="v1.0.0")
    assert again.ref == "m#prod#1"
    assert "m#prod#2" not in repo.git("tag", "-l")


async def test_stale_expected_names_who_moved_it(registered, backend_ctx):
    repo, shas = registered
    repo.tag("m#prod#1", shas[0], tagger="Mallory", at=T0 + 100)
    registry = make_registry(repo, backend_ctx)
    with pytest.raises(Conflict) as info:
        await registry.assign("m", "v1.2.0", "prod", actor="eve", expected=None)
    err = info.value
    assert (err.expected, err.actual, err.changed_by) == (None, "v1.0.0", "Mallory")
    assert "Mallory" in str(err) and "m#prod#1" in str(err) and "2024-03-09 16:01:40" in str(err)
    with pytest.raises(Conflict):
        await registry.assign("m", "v1.2.0", "prod", actor="eve", expected="v1.1.0")
    with pytest.raises(Conflict, match="never been assigned"):
        await registry.assign("m", "v1.2.0", "staging", actor="eve", expected="v1.0.0")
    assert "m#prod#2" not in repo.git("tag", "-l")


@pytest.mark.parametrize(
    ("version", "stage", "match"),
    [
        ("v9.9.9", "prod", "not registered"),
        ("v1.1.0", "prod", "deregistered"),
        ("v1.0.0", "bad stage", "not a valid GTO stage"),
        ("v1.0.0", "qa", "not allowed"),
    ],
)
async def test_assign_refusals(registered, backend_ctx, version, stage, match):
    repo, shas = registered
    repo.tag("m@v1.1.0!", shas[1], at=T0 + 3)
    (repo.path / ".gto").write_text("stages: [dev, staging, prod]\n")
    with pytest.raises(NotFound, match=match):
        await make_registry(repo, backend_ctx).assign("m", version, stage, actor="eve")


async def test_unassign_follows_gto_semantics(registered, backend_ctx):
    repo, _ = registered
    registry = make_registry(repo, backend_ctx)
    await registry.assign("m", "v1.0.0", "prod", actor="eve", expected=None)
    await registry.assign("m", "v1.1.0", "prod", actor="eve", expected="v1.0.0")
    with pytest.raises(Conflict):
        await registry.unassign("m", "prod", actor="eve", expected="v1.0.0")
    after = await registry.unassign("m", "prod", actor="eve", expected="v1.1.0")
    assert after.version == "v1.0.0"  # the previous assignment still stands
    assert "m#prod!#3" in repo.git("tag", "-l")
    empty = await registry.unassign("m", "prod", actor="eve", expected="v1.0.0")
    assert empty.version is None
    assert (await registry.unassign("m", "prod", actor="eve", expected=None)).version is None


async def test_register(commits, backend_ctx):
    repo, shas = commits
    registry = make_registry(repo, backend_ctx)
    version = await registry.register("m", "v1.0.0", shas[0][:10], actor="Alice", message="hi")
    assert (version.commit, version.created_by, version.tags) == (
        shas[0],
        "Alice",
        {"gto.tag": "m@v1.0.0"},
    )
    assert tag_info(repo, "m@v1.0.0")[:3] == ("tag", shas[0], "Alice")
    with pytest.raises(Conflict, match="already registered"):
        await registry.register("m", "v1.0.0", shas[1], actor="Bob")
    with pytest.raises(Conflict, match="already carries"):
        await registry.register("m", "v1.1.0", shas[0], actor="Bob")
    with pytest.raises(NotFound, match="no commit"):
        await registry.register("m", "v1.1.0", "nope", actor="Bob")
    with pytest.raises(NotFound, match="not a GTO version"):
        await registry.register("m", "1.1.0", shas[1], actor="Bob")
    await registry.register("dir:sub", "v0.1.0", shas[1], actor="Bob")
    assert "dir=sub@v0.1.0" in repo.git("tag", "-l")
    assert [v.version for v in await registry.versions("m")] == ["v1.0.0"]


async def test_racing_writer_with_another_counter_still_loses(registered, backend_ctx, monkeypatch):
    """A reads, then B moves the stage with a different counter before A writes: A loses."""
    repo, shas = registered
    a = make_registry(repo, backend_ctx)
    b = make_registry(repo, backend_ctx)
    original = GtoRegistry._create_tag

    async def b_goes_first(self, *args, **kwargs):
        if self is a:
            repo.tag("m#staging#7", shas[0], at=T0 + 50)  # unrelated tag: B's counter differs
            await b.assign("m", "v1.2.0", "prod", actor="bob", expected=None)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(GtoRegistry, "_create_tag", b_goes_first)
    with pytest.raises(Conflict, match="same moment"):
        await a.assign("m", "v1.1.0", "prod", actor="alice", expected=None)
    tags = repo.git("tag", "-l", "m#prod*").split()
    assert tags == ["m#prod#8"]


RACER = """
import asyncio, sys, time, pathlib
from console.backends.gto_registry import GtoRegistry
from console.plugins.options import GtoConfig
from console.plugins import BackendContext
from console.ports import Conflict

async def main():
    repo, go, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    reg = GtoRegistry(GtoConfig(), BackendContext(repo, repo, None, 20.0))
    await reg.versions("m")
    (go.parent / f"ready-{version}").touch()
    while not go.exists():
        time.sleep(0.002)
    try:
        await reg.assign("m", version, "prod", actor=version, expected=None)
        print("won")
    except Conflict:
        print("conflict")

asyncio.run(main())
"""


async def test_two_processes_race_exactly_one_wins(registered):
    repo, _ = registered
    go = repo.path.parent / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(repo.path), str(go), version],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for version in ("v1.1.0", "v1.2.0")
    ]
    deadline = time.monotonic() + 60
    while not all((go.parent / f"ready-{v}").exists() for v in ("v1.1.0", "v1.2.0")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        await asyncio.sleep(0.01)  # both have imported and read the registry
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    results = sorted(o.decode().strip() for o, _ in outs)
    assert results == ["conflict", "won"], [e.decode()[-500:] for _, e in outs]
    assert len(repo.git("tag", "-l", "m#prod*").split()) == 1


# -- snapshot freshness ----------------------------------------------------------------------


def age_refs(repo):
    """Make every ref file and directory look old, so only a real change moves the mtime."""
    old = time.time() - 3600
    for root, dirs, files in os.walk(repo.path / ".git" / "refs"):
        for name in [*dirs, *files]:
            os.utime(os.path.join(root, name), (old, old))
        os.utime(root, (old, old))
    packed = repo.path / ".git" / "packed-refs"
    if packed.exists():
        os.utime(packed, (old, old))


@pytest.mark.parametrize("how", ["loose", "packed", "subdirectory"])
async def test_snapshot_refreshes_when_another_process_adds_a_tag(registered, backend_ctx, how):
    repo, shas = registered
    if how == "packed":
        repo.git("pack-refs", "--all")
    age_refs(repo)
    registry = make_registry(repo, backend_ctx)
    await registry.versions("m")
    assert registry._snap is not None and registry._snap.is_current()
    name = {"loose": "m@v2.0.0", "packed": "m@v2.0.0", "subdirectory": "team/x@v0.1.0"}[how]
    repo.tag(name, shas[3])
    if how == "packed":
        repo.git("pack-refs", "--all")
    model = name.split("@")[0]
    assert name.split("@")[1] in [v.version for v in await registry.versions(model)]
    if how == "subdirectory":  # a second tag in the now-known subdirectory
        age_refs(repo)
        await registry.versions(model)
        repo.tag("team/x@v0.2.0", shas[4])
        assert "v0.2.0" in [v.version for v in await registry.versions(model)]


async def test_unchanged_refs_are_not_read_again(registered, backend_ctx, monkeypatch):
    repo, _ = registered
    age_refs(repo)
    reads = []
    original = gto_snapshot.read_snapshot

    async def counting(*args, **kwargs):
        reads.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(gto_registry, "read_snapshot", counting)
    registry = make_registry(repo, backend_ctx)
    await asyncio.gather(*(registry.versions("m") for _ in range(50)), registry.stages("m"))
    await registry.history("m")
    assert len(reads) == 1


async def test_ten_thousand_versions(git_repo, backend_ctx, monkeypatch):
    """10,000 versions read right and served from one snapshot (speed is measured in bench/)."""
    repo = git_repo()
    shas = [repo.commit(f"c{i}") for i in range(5)]
    specs = [
        {"name": f"big@v{i // 100}.{i % 100}.0", "commit": shas[i % 5], "at": T0 + i}
        for i in range(10_000)
    ]
    specs.append({"name": "big#prod#1", "commit": shas[2], "at": T0 + 20_000})
    repo.tags(specs)
    age_refs(repo)
    reads = []
    original = gto_snapshot.read_snapshot

    async def counting(*args, **kwargs):
        reads.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(gto_registry, "read_snapshot", counting)
    registry = make_registry(repo, backend_ctx)
    versions = await registry.versions("big")
    assert len(versions) == 10_000
    assert [v.version for v in versions[:3]] == ["v0.0.0", "v0.1.0", "v0.2.0"]
    assert versions[10].version == "v0.10.0" and versions[-1].version == "v99.99.0"
    stages = await registry.stages("big")
    assert stages[0].version == "v99.97.0"  # the newest registration at that commit
    await registry.versions("big")
    assert len(reads) == 1  # one for-each-ref for all of it


# -- push --------------------------------------------------------------------------------------
# (two clones of one bare remote, racing, and a third read by gto: test_gto_remote.py)


async def test_a_remote_decides_and_nothing_is_written_when_it_can_not(
    registered, backend_ctx, git_repo
):
    repo, _ = registered
    remote = git_repo("remote.git", bare=True)
    repo.git("remote", "add", "origin", str(remote.path))
    repo.git("push", "-q", "origin", "refs/tags/*")
    registry = make_registry(repo, backend_ctx)  # origin by default
    await registry.sync()
    await registry.assign("m", "v1.0.0", "prod", actor="eve")
    assert "m#prod#1" in remote.git("tag", "-l").split()
    assert "m#prod#1" in repo.git("tag", "-l").split()
    named = make_registry(repo, backend_ctx, push_remote="nowhere")
    with pytest.raises(Unreachable, match=r"'nowhere', which is not a remote"):
        await named.assign("m", "v1.1.0", "prod", actor="eve", expected="v1.0.0")
    repo.git("remote", "set-url", "origin", str(remote.path.parent / "gone.git"))
    with pytest.raises(Unreachable, match=r"nothing was changed: pushing tag m#prod#2 to origin"):
        await make_registry(repo, backend_ctx).assign(
            "m", "v1.1.0", "prod", actor="eve", expected="v1.0.0"
        )
    assert "m#prod#2" not in repo.git("tag", "-l").split()  # not a release: not even locally


async def test_local_only_writes_say_how_to_push(registered, backend_ctx, git_repo):
    repo, _ = registered
    remote = git_repo("remote.git", bare=True)
    repo.git("remote", "add", "origin", str(remote.path))
    registry = make_registry(repo, backend_ctx, push_remote=False)
    done = await registry.assign("m", "v1.0.0", "prod", actor="eve")
    assert remote.git("tag", "-l") == ""
    note = await registry.unpublished(done.ref)
    assert f"push origin refs/tags/{done.ref}" in note and "only in this clone" in note


async def test_reads_say_how_old_the_last_fetch_is(registered, backend_ctx, git_repo):
    repo, _ = registered
    remote = git_repo("remote.git", bare=True)
    repo.git("remote", "add", "origin", str(remote.path))
    registry = make_registry(repo, backend_ctx)
    assert await registry.remote() == "origin" and await registry.fetched_at() is None
    await registry.sync()
    fetched = await registry.fetched_at()
    (repo.path / "now").touch()  # the file system's clock, not the process's (faketime)
    assert (
        fetched is not None and abs((repo.path / "now").stat().st_mtime - fetched.timestamp()) < 600
    )
    assert await make_registry(repo, backend_ctx, push_remote=False).fetched_at() is None


async def test_snapshot_is_versions_and_stages_of_each_model(commits, backend_ctx):
    repo, shas = commits
    repo.commit("index", {"artifacts.yaml": "fraud: {}\n"})
    for i, model in enumerate(("a", "b")):
        repo.tag(f"{model}@v1.0.0", shas[i], at=T0)
        repo.tag(f"{model}@v1.1.0", shas[i + 2], at=T0 + 1)
        repo.tag(f"{model}#prod#1", shas[i], at=T0 + 2)
    registry = make_registry(repo, backend_ctx)
    got = await registry.snapshot(["a", "b", "fraud", "ghost"])
    for model in ("a", "b", "fraud"):
        entry = got[model]
        assert entry.complete
        assert entry.versions == await registry.versions(model)
        assert entry.stages == await registry.stages(model)
    assert [s.version for s in got["a"].stages] == ["v1.0.0"]
    assert isinstance(got["ghost"], NotFound) and "no model 'ghost'" in str(got["ghost"])
