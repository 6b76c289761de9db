"""Secrets: a canary credential for every backend that takes one (mlflow, prometheus, github-
actions, gitlab-ci and its trigger token, the postgres password), all from environment
variables, against peers that echo back everything they were sent (headers and body) in their
error messages. The canary must never appear — raw, base64, base64url, URL-encoded or hex —
in the log file, the audit log, `--json` output, the CLI's other output, error messages, or
any screen of the TUI (drawn as a screenshot would hold it). A crash of the TUI itself
(Textual's traceback) is not provoked here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner

from console.domain import Actor
from tests.release.conftest import make_workspace

from .faultserver import FaultServer, Hit, Reply, closed_port, json_reply

pytestmark = pytest.mark.xdist_group("reliability-secrets")
CANARY = "CANARY-7f3a+b/c=d_e9Q~x"
SECRETS = {name: f"{CANARY}-{name}" for name in ("mlflow", "prom", "gh", "gl", "trig", "pg")}
USER = "svc-user"


def forms(secret: str) -> set[str]:
    """Every encoding of ``secret`` a leak could take (and of ``user:secret``, Basic auth)."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    for text in (secret, f"{USER}:{secret}"):
        raw = text.encode()
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            b = enc(raw).decode()
            out |= {b, b.rstrip("=")}
        out |= {binascii.hexlify(raw).decode(), binascii.hexlify(raw).decode().upper()}
    return out


ALL_FORMS = {f: name for name, s in SECRETS.items() for f in forms(s)}


def leaks(text: str | bytes) -> list[str]:
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return sorted({f"{ALL_FORMS[f]} as {f[:24]}" for f in ALL_FORMS if f in data})


def echo(hit: Hit) -> Reply:
    """A peer that repeats what it was sent, secrets included, in its error message."""
    said = f"auth={hit.headers.get('Authorization', '')} body={hit.body.decode(errors='replace')}"
    return json_reply({"message": said, "error": said, "error_code": "BAD_REQUEST"}, 400)


@pytest.fixture
def world(tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    env = {"mlflow": "C_MLFLOW", "prom": "C_PROM", "gh": "C_GH", "gl": "C_GL", "trig": "C_TRIG",
           "pg": "C_PG"}  # fmt: skip
    for name, var in env.items():
        monkeypatch.setenv(var, SECRETS[name])
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))
    monkeypatch.setattr("console.identity.current_actor", lambda *a, **k: Actor(user="dev"))
    cell = tmp_path.name
    fault_server.add(cell, echo)
    url = fault_server.url(cell)
    common = f'use_keyring = false\ncredentials_file = "{tmp_path / "none.toml"}"'
    extra = f"""
[backends.metrics]
type = "prometheus"
url = "{url}"
auth = "basic"
username = "{USER}"
token_env = "C_PROM"
{common}

[backends.ci]
type = "github-actions"
repository = "acme/m"
api_url = "{url}"
token_env = "C_GH"
{common}

[backends.deploy]
type = "gitlab-ci"
project = "ml/m"
url = "{url}"
token_env = "C_GL"
trigger_token_env = "C_TRIG"
{common}
"""
    return make_workspace(tmp_path / "ws", extra=extra).path


def _run(*args: str) -> str:
    from console.cli.group import cli

    result = CliRunner().invoke(cli, list(args))
    return f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception or ''}"


def _with(ws: Path, extra: str) -> Path:
    toml = ws / "cd4ml-console.toml"
    toml.write_text(toml.read_text() + extra)
    return ws


def test_no_form_of_any_canary_leaks(world: Path, tmp_path: Path) -> None:
    assert not leaks("nothing"), "the canary forms must not match innocent text"
    w = str(world)
    outputs = {
        "status": _run("-w", w, "status"),
        "status --json": _run("-w", w, "status", "--json"),
        "versions --json": _run("-w", w, "versions", "m", "--json"),
        "doctor": _run("-w", w, "doctor"),
        "compare --json": _run("-w", w, "compare", "m", "v1.1.0", "--json"),
        "promote staging": _run(
            "-w", w, "promote", "m", "v1.1.0", "--to", "staging", "--reason", "canary", "--json"
        ),
        "report": _run("-w", w, "report", "m", "v1.1.0"),
        "audit --json": _run("-w", w, "audit", "--json"),
        "audit --csv": _run("-w", w, "audit", "--csv"),
    }
    # The deploy (gitlab trigger with its token in the form body) really ran and failed:
    assert "deploy" in outputs["promote staging"], outputs["promote staging"]
    # MLflow as the registry, and PostgreSQL as the audit store (refusing connections).
    pg = f"""
[backends.registry]
type = "mlflow"
url = "{_url_of(world)}"
auth = "bearer"
token_env = "C_MLFLOW"
use_keyring = false
credentials_file = "{tmp_path / "none.toml"}"

[backends.audit]
type = "postgres"
dsn = "postgresql://audit@127.0.0.1:{closed_port()}/cd4ml"
token_env = "C_PG"
use_keyring = false
credentials_file = "{tmp_path / "none.toml"}"
"""
    _with(world, pg)
    outputs |= {
        "mlflow status --json": _run("-w", w, "status", "--json"),
        "mlflow versions": _run("-w", w, "versions", "m"),
        "mlflow+pg doctor": _run("-w", w, "doctor"),
        "pg promote": _run("-w", w, "promote", "m", "1", "--to", "staging", "--reason", "c"),
        "pg audit verify --json": _run("-w", w, "audit", "verify", "--json"),
    }
    found = {k: leaks(v) for k, v in outputs.items() if leaks(v)}
    log = tmp_path / "console.log"
    if log.exists():
        found |= {"log file": leaks(log.read_bytes())} if leaks(log.read_bytes()) else {}
    for db in (world / ".cd4ml").glob("audit.sqlite*"):
        if leaks(db.read_bytes()):
            found[db.name] = leaks(db.read_bytes())
    assert found == {}, json.dumps(found, indent=1)
    # The peer did receive the secrets (so the test would see a leak if there were one).
    assert any("Bearer" in o or "rejected" in o for o in outputs.values())


def _url_of(ws: Path) -> str:
    for line in (ws / "cd4ml-console.toml").read_text().splitlines():
        if line.startswith("url = "):
            return json.loads(line.split("=", 1)[1].strip())
    raise AssertionError("no url")


async def test_no_canary_on_any_screen_of_the_tui(world: Path) -> None:
    """The same echoing peers, seen through the TUI: the overview, every panel of the model
    screen, help, and a refused promotion's dialog, drawn as text (what a screenshot or an
    SVG snapshot would hold), never show any form of a canary."""
    from console.config import load_config
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.model import ModelScreen

    from .tui_rig import settle, tour_model_screen, until

    app = ConsoleApp(
        load_config=lambda: load_config(None, world), launch=Launch(label="ws"), refresh_seconds=0
    )
    screens: dict[str, str] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.services is not None, "the workspace", 20)
        await settle(pilot)
        screens["overview"] = app.export_screenshot()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ModelScreen), "the model screen", 10)
        await settle(pilot)
        await tour_model_screen(pilot, app, screens)
        await pilot.press("escape", "p")
        await settle(pilot)
        screens["promote"] = app.export_screenshot()
        await pilot.press("escape")
        await settle(pilot)
    drawn = {k: re.sub(r"<[^>]+>", "", v).replace("&#160;", " ") for k, v in screens.items()}
    assert any("rejected" in v or "HTTP 400" in v for v in drawn.values()), drawn["model tab 2"]
    found = {k: leaks(v) for k, v in screens.items() if leaks(v)}
    assert found == {}, json.dumps(found, indent=1)
