"""Config: found the documented way; every bad config names the file, the key and the fix."""

from pathlib import Path

import pytest

from console.config import ConfigError, NoWorkspace, load_config, parse_config
from console.plugins import discover
from console.services.workspace import validate_backend_options

BAD_CONFIGS = [
    ("stages = 'prod'", "stages: Input should be a valid list"),
    ("stages = []", "stages: Value error, list at least one stage"),
    ("stages = ['a', 'a']", "repeated: a"),
    ("colour = 'red'", "colour: unknown key"),
    ("[ui]\ntheme = 3", "ui.theme: Input should be a valid string"),
    (
        "[ui]\nrefresh_seconds = 0",
        "ui.refresh_seconds: Input should be greater than or equal to 0.5",
    ),
    ("[backends.registy]\ntype = 'gto'", "unknown backend kind registy"),
    ("[backends.registry]\nkind = 'gto'", "backends.registry.type: required key is missing"),
    ("production_stage = 'prod'", "production_stage 'prod' is not in stages"),
    ("[policy.stages.qa]\nrequired_approvals = 1", "policy.stages names unknown stage(s) ['qa']"),
    (
        "[policy.stages.production]\nrequired_approvals = -1",
        "policy.stages.production.required_approvals: Input should be greater than or equal to 0",
    ),
    ("[models.m]\nkey_metric = ['auc']", "models.m.key_metric: unknown key"),
    (
        "[metrics.auc]\ndirection = 'up'",
        "metrics.auc.direction: Input should be 'higher' or 'lower'",
    ),
    ("stages = [", "not valid TOML"),
    ("[slo]\nwindow = '10 minutes'", "slo.window: Value error, '10 minutes' is not a duration"),
    ("[slo]\nerror_rate = 2", "slo.error_rate: Input should be less than or equal to 1"),
    ("[slo]\np95 = 250", "slo.p95: unknown key"),
    ("[models.m.slo]\nwindow = '0s'", "models.m.slo.window: Value error, '0s': a duration must"),
    (
        "[policy.stages.production]\nlive = { source_stage = 'shadow' }",
        "policy.stages.production.live.source_stage 'shadow' is not in stages",
    ),
    (
        "[policy.stages.production]\nlive = { max_disagreement = 1.5 }",
        "policy.stages.production.live.max_disagreement: Input should be less than or equal to 1",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_names_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, Path("/etc/cd4ml/cd4ml-console.toml"))
    assert "/etc/cd4ml/cd4ml-console.toml" in str(err.value)
    assert message in str(err.value)


BAD_BACKEND_OPTIONS = [
    (
        "[backends.registry]\ntype = 'nope'",
        "backends.registry.type: no backend plugin named 'nope'",
    ),
    ("[backends.registry]\ntype = 'dvc'", "plugin 'dvc' provides data, not registry"),
    ("[backends.ci]\ntype = 'runs-folder'\npaht = 'x'", "backends.ci.paht: unknown key"),
    ("[backends.metrics]\ntype = 'scrape'", "backends.metrics.url: required key is missing"),
    (
        "[backends.metrics]\ntype = 'scrape'\nurl = 'http://x'\nhistory = 1",
        "backends.metrics.history: Input should be greater than or equal to 2",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_BACKEND_OPTIONS)
def test_bad_backend_options_name_the_key(text: str, message: str) -> None:
    config = parse_config(text, Path("/w/cd4ml-console.toml"))
    with pytest.raises(ConfigError) as err:
        validate_backend_options(config, discover())
    assert "/w/cd4ml-console.toml" in str(err.value)
    assert message in str(err.value)


def test_good_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "cd4ml-console.toml").write_text(
        "stages = ['staging', 'production']\n[workspace]\npath = 'repo'\n"
        "[backends.metrics]\ntype = 'scrape'\nurl = 'http://127.0.0.1:9/metrics'\n"
    )
    config = load_config(workspace=tmp_path)
    assert config.root == (tmp_path / "repo").resolve()
    assert config.prod_stage == "production"
    assert config.backend("registry").type == "gto"  # embedded default
    assert config.backend("metrics").options == {"url": "http://127.0.0.1:9/metrics"}
    assert config.backend("deploy") is None


def test_config_file_flag_wins_and_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(config_file=tmp_path / "nope.toml")


def test_zero_config_inside_a_git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    sub = tmp_path / "src"
    sub.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = load_config(workspace=sub)
    assert config.source is None
    assert config.root == tmp_path.resolve()


def test_outside_any_repo_points_to_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(NoWorkspace) as err:
        load_config(workspace=tmp_path)
    assert "cd4ml-console demo" in str(err.value)
    assert err.value.exit_code == 2


def test_theme_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CD4ML_THEME", "light")
    assert parse_config("", tmp_path / "c.toml").ui.theme == "light"


@pytest.mark.parametrize(
    ("text", "production", "origin"),
    [
        ('stages = ["dev", "prod", "hotfix"]\n', "prod", "cd4ml-console.toml"),
        ('stages = ["a", "b"]\n', "b", "cd4ml-console.toml"),
        ('stages = ["dev", "prod"]\nproduction_stage = "dev"\n', "dev", "cd4ml-console.toml"),
        ("", "production", "the default (/x/cd4ml-console.toml sets no stages)"),
    ],
)
def test_the_production_stage_is_configured_else_named_so(
    text: str, production: str, origin: str
) -> None:
    config = parse_config(text, Path("/x/cd4ml-console.toml"))
    assert config.prod_stage == production
    assert config.stages_origin.endswith(origin)
