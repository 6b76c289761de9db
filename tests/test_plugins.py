"""Plugin discovery through real entry points: good plugins load, broken ones are reported."""

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from console.plugins import ENTRY_POINT_GROUP, discover

PLUGIN_SOURCE = """
from console.plugins import BackendPlugin, PluginConfig

class EchoConfig(PluginConfig):
    greeting: str = "hi"

class EchoCI:
    name = "echo-ci"
    def __init__(self, cfg, ctx):
        self.cfg = cfg
    async def check(self):
        return self.cfg.greeting
    async def runs_for(self, commit):
        return []
    async def aclose(self):
        pass

GOOD = BackendPlugin("echo-ci", frozenset({"ci"}), 1, EchoConfig, EchoCI, "test plugin")
FUTURE = BackendPlugin("future", frozenset({"ci"}), 99, EchoConfig, EchoCI, "from the future")
ODD = BackendPlugin("odd", frozenset({"teleporter"}), 1, EchoConfig, EchoCI)
NOT_A_PLUGIN = 42
"""

ENTRY_POINTS = """
[cd4ml_console.backends]
echo-ci = echo_plugin:GOOD
future = echo_plugin:FUTURE
odd = echo_plugin:ODD
wrong-type = echo_plugin:NOT_A_PLUGIN
broken = echo_plugin_missing:THING
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a test distribution (dist-info + module) on sys.path, as pip would."""
    site = tmp_path / "site"
    dist = site / "echo_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    (site / "echo_plugin.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_embedded_backends_register_through_the_entry_point_group() -> None:
    catalog = discover()
    for name, kind in [
        ("git", "code"),
        ("gto", "registry"),
        ("dvc", "data"),
        ("runs-folder", "ci"),
        ("scrape", "metrics"),
        ("sqlite-audit", "audit"),
    ]:
        assert kind in catalog.plugins[name].kinds
        assert catalog.plugins[name].distribution.startswith("cd4ml-console")
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"git", "gto", "dvc"} <= names


def test_third_party_plugin_is_found_and_broken_ones_are_reported(installed_plugin: Path) -> None:
    catalog = discover()
    plugin = catalog.plugins["echo-ci"]
    assert plugin.kinds == frozenset({"ci"})
    assert plugin.distribution == "echo-plugin 0.1.0"
    problems = {p.entry_point: p.reason for p in catalog.problems}
    assert "api_version 99" in problems["future"]
    assert "unknown kinds ['teleporter']" in problems["odd"]
    assert "not a console.plugins.BackendPlugin" in problems["wrong-type"]
    assert "failed to import echo_plugin_missing" in problems["broken"]
    assert "future" not in catalog.plugins


async def test_a_plugin_backend_is_built_from_config(
    installed_plugin: Path, tmp_path: Path
) -> None:
    from console.config import parse_config
    from console.services.workspace import open_workspace

    config = parse_config(
        "[backends.ci]\ntype = 'echo-ci'\ngreeting = 'hello'\n", tmp_path / "c.toml"
    )
    ws = open_workspace(config)
    assert await ws.backends["ci"].check() == "hello"


def test_plugins_command_lists_kinds_and_problems(installed_plugin: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed_plugin)}
    out = subprocess.run(
        [sys.executable, "-m", "console", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 1, out.stderr  # some plugins are broken: say so in the exit code
    doc = json.loads(out.stdout)
    kinds = {p["name"]: p["kinds"] for p in doc["plugins"]}
    assert kinds["echo-ci"] == ["ci"] and kinds["gto"] == ["registry"]
    assert {p["entry_point"] for p in doc["problems"]} == {"future", "odd", "wrong-type", "broken"}
    text = subprocess.run(
        [sys.executable, "-m", "console", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    ).stdout
    assert "echo-ci" in text and "api_version 99" in text
