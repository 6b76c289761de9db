"""The benchmark's workspace generator makes valid workspaces (small sizes only)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import workspaces as wsmod
from console.config import load_config

ROOT = Path(__file__).resolve().parent.parent
GTO = Path(os.environ.get("CD4ML_GTO") or ROOT / ".venv-gto" / "bin" / "gto")
WIDE = wsmod.Spec("t-wide", models=3, versions=5)
DEEP = wsmod.Spec("t-deep", models=1, versions=40)


def status(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "console", "-w", str(path), "status", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "CD4ML_LOG_FILE": os.devnull},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, wsmod.Built]:
    root = tmp_path_factory.mktemp("bench")
    return {s.name: wsmod.build(s, root / s.key) for s in (WIDE, DEEP)}


def test_config_is_valid_and_lists_every_model(built: dict[str, wsmod.Built]) -> None:
    for b in built.values():
        config = load_config(None, b.path)
        assert list(config.models) == b.spec.model_names
        assert config.stages == ["staging", "production"]


def test_status_reads_every_model_and_stage(built: dict[str, wsmod.Built]) -> None:
    doc = status(built["t-wide"].path)
    assert doc["errors"] == []
    assert [m["name"] for m in doc["models"]] == WIDE.model_names
    for m in doc["models"]:
        # versions 1 and 3 went to staging; 1 moved on to production when 3 arrived
        assert m["stages"]["staging"]["version"] == wsmod.version_name(3)
        assert m["stages"]["production"]["version"] == wsmod.version_name(1)
        assert m["stages"]["production"]["ci"] == "success"
        assert m["stages"]["staging"]["data"], "the DVC outs are read"
        assert set(wsmod.KEY_METRICS) <= set(m["stages"]["staging"]["metrics"])
        assert m["versions"] == WIDE.versions
        assert m["candidates"] == [wsmod.version_name(j) for j in (2, 3, 4)]


def test_many_versions_of_one_model(built: dict[str, wsmod.Built]) -> None:
    b = built["t-deep"]
    (model,) = status(b.path)["models"]
    assert model["versions"] == DEEP.versions
    assert model["stages"]["staging"]["version"] == wsmod.version_name(38)
    assert len(list((b.path / ".ci-runs").glob("run-*.json"))) == DEEP.versions
    assert b.ci_runs == DEEP.versions and b.commits == DEEP.versions + 1


def test_same_spec_same_history(tmp_path: Path, built: dict[str, wsmod.Built]) -> None:
    again = wsmod.build(WIDE, tmp_path / "again")
    assert again.head == built["t-wide"].head


def test_cache_reuses_a_finished_build(tmp_path: Path) -> None:
    spec = wsmod.Spec("t-cache", models=2, versions=2)
    first = wsmod.ensure(spec, tmp_path)
    (first.path / "sentinel").write_text("kept")
    again = wsmod.ensure(spec, tmp_path)
    assert again.head == first.head and (again.path / "sentinel").exists()


def test_versions_sort_as_semver() -> None:
    names = [wsmod.version_name(j) for j in (0, 1, 99, 100, 9_999)]
    assert names == ["v1.0.0", "v1.0.1", "v1.0.99", "v1.1.0", "v1.99.99"]


@pytest.mark.skipif(not GTO.exists(), reason=f"gto CLI not found at {GTO} (set CD4ML_GTO)")
def test_gto_cli_reads_the_tags(built: dict[str, wsmod.Built]) -> None:
    path = built["t-wide"].path
    out = subprocess.run(
        [str(GTO), "show", "--json", "-r", str(path)],
        capture_output=True, text=True, check=True, timeout=60, cwd=path,
    )  # fmt: skip
    shown = json.loads(out.stdout)
    for name in WIDE.model_names:
        assert shown[name]["stage"] == {
            "staging": wsmod.version_name(3),
            "production": wsmod.version_name(1),
        }
