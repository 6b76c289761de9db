"""Zero config on a repository built only by the ``gto`` CLI: what a gto user meets first.

The commands run in-process (click's runner) on a fresh copy of the repository of
tests/backends/_gto_world.py, with and without a ``.gto`` that lists the stages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _gto_cli import gto_reads, needs_gto
from click.testing import CliRunner

from console.cli.group import cli

pytestmark = needs_gto


@pytest.fixture(autouse=True)
def _quiet_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CD4ML_LOG_FILE", os.devnull)
    monkeypatch.setenv("USER", "rm")  # the release manager (default role) acting


def console(path: Path, *args: str) -> Any:
    """``cd4ml-console -w PATH ARGS``: the result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(cli, ["-w", str(path), *args], catch_exceptions=False)


def audit_events(path: Path) -> list[dict[str, Any]]:
    result = console(path, "audit", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["events"]


@pytest.mark.parametrize("dot_gto", [True, False], ids=["dot-gto", "stage-tags"])
def test_zero_config_uses_the_stages_of_the_repository(gto_world, dot_gto):
    world = gto_world(dot_gto=dot_gto)
    result = console(world.repo.path, "status", "--json")
    doc = json.loads(result.stdout)
    assert doc["stages"] == ["dev", "staging", "prod"]
    assert doc["production_stage"] == "prod"
    (shown,) = gto_reads(world.repo, ["show"])
    for model in doc["models"]:
        if model["name"] not in shown:  # deprecated: gto show hides it
            continue
        ours = {s: (d or {}).get("version") for s, d in model["stages"].items()}
        assert ours == shown[model["name"]]["stage"], model["name"]


@pytest.mark.parametrize("dot_gto", [True, False], ids=["dot-gto", "stage-tags"])
def test_doctor_says_where_the_stages_came_from(gto_world, dot_gto):
    world = gto_world(dot_gto=dot_gto)
    out = console(world.repo.path, "doctor").stdout
    line = next(x for x in out.splitlines() if x.startswith("stages:"))
    assert "dev, staging, prod" in line and "production: prod" in line
    assert (".gto" in line) is dot_gto
    assert ("stage tags" in line) is not dot_gto


@pytest.mark.parametrize("dot_gto", [True, False], ids=["dot-gto", "stage-tags"])
def test_promote_to_prod_is_planned_and_to_production_refused_before_any_audit_event(
    gto_world, dot_gto
):
    world = gto_world(dot_gto=dot_gto)
    path = world.repo.path
    plan = console(path, "promote", "churn", "v1.2.0", "--to", "prod", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["from_version"] == "v1.1.0"
    tags = world.repo.git("tag", "-l")
    wrong = console(path, "promote", "churn", "v1.2.0", "--to", "production", "--reason", "go")
    assert wrong.exit_code == 2
    assert "unknown stage 'production'" in wrong.stderr and "dev, staging, prod" in wrong.stderr
    assert audit_events(path) == []
    assert world.repo.git("tag", "-l") == tags  # no parallel stage next to prod


def test_a_stage_the_dot_gto_refuses_is_refused_before_any_audit_event(gto_world):
    """A config naming `production` while `.gto` allows only dev/staging/prod: the registry's
    refusal comes before the request is recorded, not after."""
    world = gto_world(dot_gto=True)
    path = world.repo.path
    (path / "cd4ml-console.toml").write_text(
        'stages = ["staging", "production"]\n'
        "[policy.stages.production]\nrequire_ci_success = false\n"
    )
    wrong = console(path, "promote", "churn", "v1.2.0", "--to", "production", "--reason", "go")
    assert wrong.exit_code == 2, wrong.stderr
    assert "not allowed by" in wrong.stderr and ".gto" in wrong.stderr
    assert audit_events(path) == []


def test_a_deprecated_artifact_is_marked_and_not_promoted_until_revived(gto_world):
    world = gto_world(dot_gto=True)
    path = world.repo.path
    doc = json.loads(console(path, "status", "--json").stdout)
    flags = {m["name"]: m["deprecated"] for m in doc["models"]}
    assert flags["fraud"] is True and not any(v for k, v in flags.items() if k != "fraud")
    assert "fraud (deprecated)" in console(path, "status").stdout
    tags = world.repo.git("tag", "-l")
    for args in (
        ["promote", "fraud", "v0.1.0", "--to", "staging", "--reason", "go"],
        ["promote", "fraud", "v0.1.0", "--to", "staging", "--dry-run"],
        ["rollback", "fraud", "--to", "v0.1.0", "--reason", "incident", "--yes"],
    ):
        refused = console(path, *args)
        assert refused.exit_code == 3, (args, refused.stderr)
        assert "fraud is deprecated (tag fraud@deprecated by Erin" in refused.stderr
        assert "git tag -d 'fraud@deprecated'" in refused.stderr
        assert "gto register fraud" in refused.stderr
    assert audit_events(path) == [] and world.repo.git("tag", "-l") == tags
    world.repo.git("tag", "-d", "fraud@deprecated")  # revived, as the hint says
    plan = console(path, "promote", "fraud", "v0.1.0", "--to", "staging", "--dry-run")
    assert plan.exit_code == 0, plan.stderr


def test_versions_are_counted_as_gto_counts_them(gto_world):
    """Deregistered versions are listed by `versions` (marked) but not counted."""
    world = gto_world(dot_gto=False)
    doc = json.loads(console(world.repo.path, "status", "churn", "--json").stdout)
    (listed,) = gto_reads(world.repo, ["show", "churn"])
    active = [v for v in listed if v["is_active"] and not v["discovered"]]
    assert doc["models"][0]["versions"] == len(active) == 3
    rows = json.loads(console(world.repo.path, "versions", "churn", "--json").stdout)["versions"]
    assert [(r["version"], r["deregistered"]) for r in rows][:1] == [("v1.3.0", True)]


def test_rollback_skips_the_version_gto_deprecate_pulled_from_the_stage(gto_world):
    """Staging held v1.0.0, v1.1.0, v1.2.0; `gto deprecate churn v1.1.0 staging` pulled v1.1.0
    on purpose: rolling staging back proposes v1.0.0, not v1.1.0."""
    world = gto_world(dot_gto=True)
    out = console(world.repo.path, "rollback", "churn", "--stage", "staging", "--dry-run", "--json")
    assert out.exit_code == 0, out.stderr
    plan = json.loads(out.stdout)["plan"]
    assert (plan["from_version"], plan["version"]) == ("v1.2.0", "v1.0.0")


def test_versions_json_of_a_model_only_in_artifacts_yaml_is_a_document(gto_world):
    world = gto_world(dot_gto=True)
    known = console(world.repo.path, "versions", "onlyyaml", "--json")
    assert known.exit_code == 0, known.stderr
    doc = json.loads(known.stdout)
    assert (doc["model"], doc["versions"], doc["errors"]) == ("onlyyaml", [], {})
    assert "onlyyaml has no versions yet" in console(world.repo.path, "versions", "onlyyaml").stderr
    unknown = console(world.repo.path, "versions", "nosuch", "--json")
    assert unknown.exit_code == 2
    assert "no model 'nosuch'" in json.loads(unknown.stdout)["errors"]["registry"]
    assert "no model 'nosuch'" in unknown.stderr


def test_a_version_without_its_v_is_the_registered_one(gto_world):
    world = gto_world(dot_gto=True)
    path = world.repo.path
    plan = console(path, "promote", "churn", "1.2.0", "--to", "prod", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["version"] == "v1.2.0"
    missing = console(path, "promote", "churn", "v9.9.9", "--to", "prod", "--dry-run")
    assert missing.exit_code == 2
    assert "churn v9.9.9 is not a registered version (newest: v1.2.0, v1.1.0, v1.0.0)" in (
        missing.stderr
    )


def test_zero_config_leaves_the_work_tree_clean(gto_world):
    """doctor, status and a refused promotion write no file into the user's repository."""
    world = gto_world(dot_gto=True)
    path = world.repo.path
    console(path, "doctor")
    console(path, "status")
    console(path, "promote", "churn", "v1.2.0", "--to", "prod", "--reason", "go")
    assert world.repo.git("status", "--porcelain", "--ignored") == ""
    git_dir = world.repo.git("rev-parse", "--path-format=absolute", "--git-common-dir")
    state = f"state:     {Path(git_dir).resolve() / 'cd4ml-console'}"
    assert state in console(path, "doctor").stdout.splitlines()
    assert len(audit_events(path)) == 1  # the refused promotion (no CI run), recorded there


def test_compare_a_candidate_five_commits_behind_production(gto_world):
    """search v1.5.0 was registered at a commit five commits before production's v2.0.0."""
    world = gto_world(dot_gto=True)
    path = world.repo.path
    out = console(path, "compare", "search", "v1.5.0", "--json")
    assert out.exit_code == 0, out.stderr
    code = json.loads(out.stdout)["candidates"][0]["code"]
    assert code["commits"] == []
    assert [c["sha"] for c in code["behind"]] == list(reversed(world.commits[4:9]))
    # production's changes the candidate lacks, from the candidate's commit to production's
    assert code["diffstat"] == {"files": 2, "insertions": 6, "deletions": 1}
    text = console(path, "compare", "search", "v1.5.0").stdout
    assert "code:     5 commits behind prod (it lacks 2 files +6 -1)" in text
    assert "0 commits by" not in text


def test_with_a_remote_the_revive_hint_deletes_the_deprecation_there_too(gto_world, git_repo):
    """The remote is the registry's truth: deleting the tag only locally would come back with
    the next fetch, so the hint names the push that deletes it on the remote."""
    world = gto_world(dot_gto=True)
    remote = git_repo("remote.git", bare=True)
    world.repo.git("remote", "add", "origin", str(remote.path))
    world.repo.git("push", "-q", "origin", "main", "--tags")
    path = world.repo.path
    refused = console(path, "promote", "fraud", "v0.1.0", "--to", "staging", "--dry-run")
    assert refused.exit_code == 3, refused.stderr
    hint = "git tag -d 'fraud@deprecated' && git push origin ':refs/tags/fraud@deprecated'"
    assert hint in refused.stderr and "gto register fraud REF --push" in refused.stderr
    world.repo.git("tag", "-d", "fraud@deprecated")  # only locally: the fetch brings it back
    again = console(path, "promote", "fraud", "v0.1.0", "--to", "staging", "--dry-run")
    assert again.exit_code == 3, again.stderr
    world.repo.git("tag", "-d", "fraud@deprecated")
    world.repo.git("push", "-q", "origin", ":refs/tags/fraud@deprecated")
    plan = console(path, "promote", "fraud", "v0.1.0", "--to", "staging", "--dry-run")
    assert plan.exit_code == 0, plan.stderr


def test_status_says_where_the_registry_s_truth_is_and_when_it_was_fetched(gto_world, git_repo):
    """``status --json`` names the remote the gto registry shares its tags through and when
    this clone last fetched it (the registry's optional ``RegistryRemote`` port)."""
    world = gto_world(dot_gto=True)
    path = world.repo.path
    alone = json.loads(console(path, "status", "--json").stdout)["registry"]
    assert alone == {"remote": None, "fetched_at": None}
    remote = git_repo("remote.git", bare=True)
    world.repo.git("remote", "add", "origin", str(remote.path))
    world.repo.git("push", "-q", "origin", "main", "--tags")
    never = json.loads(console(path, "status", "--json").stdout)["registry"]
    assert never == {"remote": "origin", "fetched_at": None}
    world.repo.git("fetch", "-q", "origin")
    fetched = json.loads(console(path, "status", "--json").stdout)["registry"]
    assert fetched["remote"] == "origin" and fetched["fetched_at"]
