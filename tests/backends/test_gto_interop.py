"""GtoRegistry and the real ``gto`` CLI agree, whichever of them wrote the tags.

Reads go through the CLI (``gto show --json``, ``gto history --json``); writes made by gto run
its click app with the clock set per step (tests/backends/_gto_cli.py).
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import pytest
from _gto_cli import GTO, gto_json, gto_python, gto_reads, gto_write, needs_gto

from console.backends.gto_registry import GtoRegistry
from console.git.gto_tags import parse_tag
from console.plugins.options import GtoConfig

T0 = 1_710_000_000  # 2024-03-09T16:00:00Z, after the fixture's commits

pytestmark = needs_gto


EVENT_KINDS = {
    "registration": "register",
    "deregistration": "deregister",
    "assignment": "assign",
    "unassignment": "unassign",
    "deprecation": "deprecate",
}


async def assert_agree(repo, registry: GtoRegistry) -> None:
    """Models, versions, stage pointers and history: the console says what gto says."""
    models = {m.name: m for m in await registry.models()}
    names = sorted(models)
    shown, history, *per_model = gto_reads(
        repo,
        ["show", "--deprecated"],
        ["history"],
        *(["show", name, "--deprecated"] for name in names),
    )
    assert set(models) == set(shown)
    assert shown == gto_json(repo, "show", "--deprecated")  # the executable says the same
    for name, listed in zip(names, per_model, strict=True):
        summary = shown[name]
        assert models[name].deprecated is (not summary["active"]), name
        stages = {s.stage: s.version for s in await registry.stages(name)}
        for stage, version in summary["stage"].items():
            assert stages.get(stage) == version, (name, stage)
        assert {s for s, v in stages.items() if v} == {s for s, v in summary["stage"].items() if v}

        versions = {v.version: v for v in await registry.versions(name)}
        gto_versions = [v for v in listed if not v["discovered"]]
        assert set(versions) == {v["version"] for v in gto_versions}, name
        for gv in gto_versions:
            mine = versions[gv["version"]]
            assert mine.commit == gv["commit_hexsha"]
            assert mine.deregistered is (not gv["is_active"])
            assert sorted(mine.stages) == sorted(s["stage"] for s in gv["stages"])
            if gv["registrations"]:
                assert mine.created_by == gv["author"]
                assert mine.created_at == datetime.fromisoformat(gv["created_at"])

        def key(e):
            return (e[1], e[0], e[2] or "", e[3] or "", e[6])

        theirs = sorted(
            (
                EVENT_KINDS[e["event"]], datetime.fromisoformat(e["timestamp"]), e["version"],
                e["stage"], e["author"], e["message"], e["ref"],
            )
            for e in history
            if e["artifact"] == name
        )  # fmt: skip
        ours = [
            (e.kind.value, e.at, e.version, e.stage, e.actor, e.message, e.ref)
            for e in await registry.history(name)
        ]
        assert sorted(ours, key=key) == sorted(theirs, key=key), name
        assert [e[1] for e in ours] == sorted(e[1] for e in ours)  # oldest first


@pytest.fixture
def repo_with_commits(git_repo):
    repo = git_repo()
    shas = [repo.commit(f"c{i}", author=("Alice", "Bob")[i % 2]) for i in range(6)]
    repo.commit(
        "describe",
        {"artifacts.yaml": "churn:\n  type: model\n  description: Churn\nfraud:\n  type: model\n"},
    )
    return repo, shas


async def test_console_reads_what_gto_wrote(repo_with_commits, backend_ctx):
    repo, c = repo_with_commits
    steps: list[tuple[str, list[str]]] = [
        ("Alice", ["register", "churn", c[0], "--version", "v1.0.0"]),
        ("Alice", ["register", "churn", c[1], "--version", "v1.1.0"]),
        ("Bob", ["register", "churn", c[2], "--version", "v1.10.0"]),
        ("Bob", ["register", "churn", c[3], "--version", "v1.9.0"]),
        ("Bob", ["register", "churn", c[4], "--version", "v2.0.0-rc.1"]),
        ("Carol", ["assign", "churn", "--version", "v1.0.0", "--stage", "staging"]),
        ("Carol", ["assign", "churn", "--version", "v1.0.0", "--stage", "prod"]),
        ("Dan", ["assign", "churn", "--version", "v1.1.0", "--stage", "prod"]),
        ("Dan", ["assign", "churn", "--version", "v1.10.0", "--stage", "staging"]),
        ("Erin", ["deprecate", "churn", "v1.1.0", "prod"]),  # unassign: prod falls back
        ("Erin", ["deprecate", "churn", "v1.9.0"]),  # deregister
        ("Alice", ["register", "fraud", c[5]]),
        ("Alice", ["assign", "fraud", "--version", "v0.0.1", "--stage", "prod"]),
        ("Bob", ["register", "nlp:bert", c[1], "--version", "v0.1.0"]),
        ("Bob", ["assign", "nlp:bert", "--version", "v0.1.0", "--stage", "dev"]),
        ("Bob", ["register", "old", c[0]]),
        ("Carol", ["deprecate", "old"]),
    ]
    gto_write(repo, [(T0 + 10 * i, actor, args) for i, (actor, args) in enumerate(steps)])
    assert "churn#prod!#5" in repo.git("tag", "-l")  # gto's per-artifact counter
    registry = GtoRegistry(GtoConfig(), backend_ctx(repo.path))
    stages = {s.stage: s.version for s in await registry.stages("churn")}
    assert stages == {"staging": "v1.10.0", "prod": "v1.0.0"}
    await assert_agree(repo, registry)


async def test_gto_reads_what_the_console_wrote(repo_with_commits, backend_ctx):
    repo, c = repo_with_commits
    registry = GtoRegistry(GtoConfig(), backend_ctx(repo.path))
    for i, version in enumerate(["v1.0.0", "v1.1.0", "v1.2.0"]):
        await registry.register("churn", version, c[i], actor="Alice", message=f"train {i}")
    await registry.register("nlp:bert", "v0.1.0", c[3], actor="Bob")
    await registry.assign("churn", "v1.0.0", "prod", actor="Alice Smith", expected=None)
    await registry.assign("churn", "v1.1.0", "prod", actor="Bob", expected="v1.0.0")
    await registry.assign("churn", "v1.2.0", "staging", actor="Bob", expected=None)
    await registry.assign("churn", "v1.0.0", "prod", actor="Carol", expected="v1.1.0")  # rollback
    await registry.unassign("churn", "staging", actor="Carol", expected="v1.2.0")
    await registry.assign("nlp:bert", "v0.1.0", "dev", actor="Bob", message="try it")
    tags = set(repo.git("tag", "-l").split())
    assert {"churn#prod#1", "churn#prod#2", "churn#staging#3", "churn#prod#4"} <= tags
    assert {"churn#staging!#5", "nlp=bert#dev#1", "nlp=bert@v0.1.0"} <= tags
    await assert_agree(repo, registry)

    # gto continues the console's counters, and the console reads gto's next move.
    newest = max(e.at for e in await registry.history("churn"))
    move = ["assign", "churn", "--version", "v1.2.0", "--stage", "prod"]
    gto_write(repo, [(int(newest.timestamp()) + 10, "Dan", move)])
    assert "churn#prod#6" in repo.git("tag", "-l")
    prod = {s.stage: s for s in await registry.stages("churn")}["prod"]
    assert (prod.version, prod.assigned_by, prod.ref) == ("v1.2.0", "Dan", "churn#prod#6")
    await assert_agree(repo, registry)


async def test_allowed_stages_in_dot_gto(repo_with_commits, backend_ctx):
    """Both gto and the console refuse a stage that .gto does not allow."""
    repo, c = repo_with_commits
    (repo.path / ".gto").write_text("stages: [dev, staging, prod]\n")
    gto_write(repo, [(T0, "Alice", ["register", "churn", c[0], "--version", "v1.0.0"])])
    with pytest.raises(AssertionError, match="failed"):
        qa = ["assign", "churn", "--version", "v1.0.0", "--stage", "qa"]
        gto_write(repo, [(T0 + 10, "Alice", qa)])
    registry = GtoRegistry(GtoConfig(), backend_ctx(repo.path))
    from console.ports import NotFound

    with pytest.raises(NotFound, match="not allowed"):
        await registry.assign("churn", "v1.0.0", "qa", actor="eve")
    (shown,) = gto_reads(repo, ["show"])
    assert set(shown["churn"]["stage"]) == {"dev", "staging", "prod"}


NAMES = [
    "m@v1.0.0", "m@v1.0.0!", "m@v1.0.0#2", "m#prod", "m#prod#3", "m#prod!", "m#prod!#4",
    "m@deprecated", "m@deprecated#9", "dir=sub@v1.2.3", "a.b/c=d-e#stage_1#12",
    "m@v2.0.0-rc.1+build.5", "x#y", "team/model#eu/prod#1", "v1.0.0", "release-2024",
    "m@1.0.0", "m@v01.0.0", "m@v1.0.0-01", "-m@v1.0.0", "m-@v1.0.0", "m#prod#x", "x=y=z@v1.0.0",
    "a:b@v1.0.0", "m#prod!!", "m@deprecated!", "m@v1.0.0#03",
]  # fmt: skip

PARSER = r"""
import json, sys
from gto.tag import parse_name
out = {}
for name in json.load(sys.stdin):
    p = parse_name(name, raise_on_fail=False)
    out[name] = p and [
        p["name"], p["action"].value, p.get("version"), p.get("stage"), p.get("counter")
    ]
print(json.dumps(out))
"""


def test_tag_grammar_matches_gtos_parser():
    python = gto_python()
    if python is None:
        pytest.skip(f"can not find the Python interpreter of {GTO}")
    proc = subprocess.run(
        [python, "-c", PARSER], input=json.dumps(NAMES).encode(), capture_output=True, check=True
    )
    theirs = json.loads(proc.stdout)
    for name in NAMES:
        mine = parse_tag(name)
        expected = theirs[name] or None
        got = mine and [mine.artifact, mine.action.value, mine.version, mine.stage, mine.counter]
        assert got == expected, name


async def test_a_registry_built_by_the_gto_cli_reads_as_gto_shows_it(gto_world, backend_ctx):
    """Seven artifacts, old and new tag styles, deprecations, a `dir:name` artifact and a
    same-second tie: every holder, version and author agrees with `gto show`/`gto history`."""
    world = gto_world(dot_gto=True)
    registry = GtoRegistry(GtoConfig(), backend_ctx(world.repo.path))
    await assert_agree(world.repo, registry)
    ranker = {s.stage: s.version for s in await registry.stages("ranker")}
    assert ranker["prod"] == "v1.0.0"  # the tie: gto takes the version registered first


async def test_same_second_ties_follow_gtos_order(git_repo, backend_ctx):
    """Two assignments to one stage in the same second: gto takes the version registered
    first (whatever the counters, the semver order or the order of the assignments)."""
    repo = git_repo()
    c = [repo.commit(f"c{i}") for i in range(8)]

    def register(name, i, version, at):
        return (at, "Alice", ["register", name, c[i], "--version", version])

    def assign(name, version, at, stage="prod"):
        return (at, "Bob", ["assign", name, "--version", version, "--stage", stage])

    steps = [
        # registered in semver order, assigned newest first / oldest first
        register("a", 0, "v1.0.0", T0), register("a", 1, "v2.0.0", T0 + 10),
        assign("a", "v1.0.0", T0 + 20), assign("a", "v2.0.0", T0 + 20),
        register("b", 0, "v1.0.0", T0), register("b", 1, "v2.0.0", T0 + 10),
        assign("b", "v2.0.0", T0 + 20), assign("b", "v1.0.0", T0 + 20),
        # registered against semver order
        register("c", 0, "v2.0.0", T0), register("c", 1, "v1.0.0", T0 + 10),
        assign("c", "v1.0.0", T0 + 20), assign("c", "v2.0.0", T0 + 20),
        # three in one second, one of them registered in the same second as another
        register("d", 0, "v1.0.0", T0 + 5), register("d", 1, "v1.1.0", T0 + 5),
        register("d", 2, "v0.9.0", T0 + 9),
        assign("d", "v0.9.0", T0 + 20), assign("d", "v1.1.0", T0 + 20),
        assign("d", "v1.0.0", T0 + 20),
        # the same version assigned again later breaks the tie
        register("e", 0, "v1.0.0", T0), register("e", 1, "v2.0.0", T0 + 10),
        assign("e", "v1.0.0", T0 + 20), assign("e", "v2.0.0", T0 + 20),
        assign("e", "v1.0.0", T0 + 30, "staging"), assign("e", "v2.0.0", T0 + 40, "staging"),
    ]  # fmt: skip
    gto_write(repo, steps)
    registry = GtoRegistry(GtoConfig(), backend_ctx(repo.path))
    (shown,) = gto_reads(repo, ["show"])
    for name in "abcde":
        ours = {s.stage: s.version for s in await registry.stages(name)}
        assert ours == {k: v for k, v in shown[name]["stage"].items() if v}, name
    assert shown["a"]["stage"]["prod"] == shown["b"]["stage"]["prod"] == "v1.0.0"
    assert shown["c"]["stage"]["prod"] == "v2.0.0"
    await assert_agree(repo, registry)
