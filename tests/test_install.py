"""Installing as an admin does on a bastion (docs/install.md): wheels of the console and its
plugins, `pipx install` into a shared PIPX_HOME / PIPX_BIN_DIR, the plugins by `pipx inject`;
then the command works from a fresh environment with nothing from the dev venv. And `make
demo` installs what the demo needs only, `make test` the dev tools too.

Slow (a couple of minutes: wheels, then the console's dependencies into a fresh venv) and it
needs the package index the machine is set up with, as any install does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
INSTALL_TIMEOUT = 900


def run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        env={**os.environ, **(env or {})}, cwd=cwd, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
def test_pipx_install_for_everyone_with_plugins_injected(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "-q", "--no-deps", "-w", dist, ROOT, *PLUGINS)
    console = next(dist.glob("cd4ml_console-*.whl"))
    plugins = sorted(p for p in dist.glob("cd4ml_console_*.whl"))
    assert len(plugins) == len(PLUGINS)

    tools = tmp_path / "tools"  # pipx itself, as an admin would get it (apt or pip)
    run(sys.executable, "-m", "venv", tools)
    run(tools / "bin" / "python", "-m", "pip", "install", "-q", "pipx")
    shared = {
        "PIPX_HOME": str(tmp_path / "opt-pipx"),  # /opt/pipx on a bastion
        "PIPX_BIN_DIR": str(tmp_path / "bin"),  # /usr/local/bin
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    pipx = tools / "bin" / "pipx"
    run(pipx, "install", "--python", sys.executable, console, env=shared)
    run(pipx, "inject", "cd4ml-console", *plugins, env=shared)

    command = tmp_path / "bin" / "cd4ml-console"
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "CD4ML_LOG_FILE": os.devnull}
    helped = run(command, "--help", env=clean, cwd=tmp_path)
    assert "Commands:" in helped and "demo" in helped
    listed = run(command, "plugins", env=clean, cwd=tmp_path)
    for name in ("gto", "sqlite-audit", "mlflow", "prometheus", "postgres", "github-actions"):
        assert name in listed, listed
    built = run(command, "demo", tmp_path / "demo", "--no-tui", env=clean, cwd=tmp_path)
    assert "Built the demo" in built  # themes, story and templates came with the wheel
    venv_python = Path(shared["PIPX_HOME"]) / "venvs" / "cd4ml-console" / "bin" / "python"
    tools_in = run(venv_python, "-m", "pip", "list", "--format=freeze", env=clean)
    for dev_only in ("pytest", "mypy", "ruff"):
        assert f"{dev_only}==" not in tools_in.lower()


def _make_dry_run(target: str, venv: Path) -> str:
    return run("make", "-n", "-C", ROOT, target, f"VENV={venv}")


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # no stamps there: make shows every install step
    demo = [ln for ln in _make_dry_run("demo", venv).splitlines() if "pip install" in ln]
    assert len(demo) == 1 and "[dev]" not in demo[0] and "plugins/" not in demo[0]
    test = [ln for ln in _make_dry_run("test", venv).splitlines() if "pip install" in ln]
    assert any("'.[dev]'" in ln for ln in test)
    lint = [ln for ln in _make_dry_run("lint", venv).splitlines() if "pip install" in ln]
    assert any("'.[dev]'" in ln for ln in lint)
