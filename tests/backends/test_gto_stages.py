"""The stages of a workspace with no config file: `.gto`, else the stage tags, else the default."""

from __future__ import annotations

import pytest

from console.config import zero_config
from console.git.gto_stages import lifecycle_order, production_of, repo_stages


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"prod", "staging", "dev"}, ["dev", "staging", "prod"]),
        ({"production", "qa", "dev", "test"}, ["dev", "test", "qa", "production"]),
        ({"prod", "eu/shadow", "canary", "blue"}, ["canary", "blue", "eu/shadow", "prod"]),
        ({"prod", "production", "staging"}, ["staging", "prod", "production"]),
        ({"b", "a"}, ["a", "b"]),
        (set(), []),
    ],
)  # fmt: skip
def test_stage_tags_in_lifecycle_order_production_last(names, expected):
    assert lifecycle_order(names) == expected


@pytest.mark.parametrize(
    ("stages", "expected"),
    [(["dev", "prod"], "prod"), (["staging", "production", "x"], "production"),
     (["prod", "production"], "production"), (["a", "b"], "b")],
)  # fmt: skip
def test_the_production_stage_is_named_so_else_the_last(stages, expected):
    assert production_of(stages) == expected


def test_dot_gto_wins_over_tags_and_keeps_its_order(git_repo):
    repo = git_repo()
    sha = repo.commit("c")
    repo.tag("m@v1.0.0", sha)
    repo.tag("m#qa#1", sha)
    (repo.path / ".gto").write_text("stages: [prod, dev, staging]\n")
    found = repo_stages(repo.path)
    assert (found.stages, found.production) == (("prod", "dev", "staging"), "prod")
    assert found.origin.startswith(".gto")


@pytest.mark.parametrize("dot_gto", ["", "stages: []\n", "types: [model]\n", "{broken"])
def test_without_stages_in_dot_gto_the_annotated_stage_tags_count(git_repo, dot_gto):
    repo = git_repo()
    sha = repo.commit("c")
    repo.tag("m@v1.0.0", sha)
    repo.tag("m#prod", sha)
    repo.tag("m#staging!#3", sha)
    repo.tag("dir=m#dev#1", sha)
    repo.lightweight_tag("m#qa#2", sha)  # gto ignores lightweight tags
    repo.tag("release-2024", sha)
    if dot_gto:
        (repo.path / ".gto").write_text(dot_gto)
    found = repo_stages(repo.path)
    assert (found.stages, found.production) == (("dev", "staging", "prod"), "prod")
    assert "stage tags" in found.origin


def test_no_stage_anywhere_keeps_the_default(git_repo):
    repo = git_repo()
    repo.commit("c")
    config = zero_config(repo.path)
    assert (config.stages, config.prod_stage) == (["staging", "production"], "production")
    assert "default" in config.stages_origin
