"""A peer's error text is masked before it is cut short (docs/reliability.md, "Secrets in a
peer's answer").

A peer that answers an error with a long body ending in the token it was sent (``"x" * 176 +
token``) used to have its body cut to 200 characters first and masked after: the cut token no
longer matched, and its first 24 characters were shown by ``doctor``, ``status --json``, the
audit record and ``report``. Here the configured token is put at every offset of a long body,
raw and in each encoding a peer may echo it in (URL-encoded, base64, base64url, hex, and a
Basic header's ``user:token`` in base64), in a plain, a JSON and an HTML body, answered to the
HTTP plumbing the GitHub, GitLab and Prometheus plugins share; no substring of 6 or more
characters of any form may survive in the message. Then the finding's body end to end, from a
real loopback server: every output the console writes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from click.testing import CliRunner

from console.domain import Actor
from console.plugins.credentials import CredentialOptions, alookup
from console.plugins.http import HttpApi
from console.ports import BackendError
from tests.release.conftest import make_workspace

from .faultserver import FaultServer

pytestmark = pytest.mark.xdist_group("reliability-secrets")
TOKEN = "CANARY-7f3a+b/c=d_e9Q~x-5e2c41d09a7b"
USER = "svc-user"
FILLER = 240  # longer than any message keeps (200): the token is cut at some offsets
GRAM = 6


def forms(token: str) -> dict[str, str]:
    """The token as a peer may echo it."""
    return {
        "raw": token,
        "url": quote(token, safe=""),
        "url+": quote_plus(token),
        "base64": base64.b64encode(token.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(token.encode()).decode(),
        "hex": token.encode().hex(),
        "HEX": token.encode().hex().upper(),
        "basic": base64.b64encode(f"{USER}:{token}".encode()).decode(),
    }


FORMS = forms(TOKEN)


def survivors(output: str) -> list[str]:
    """Substrings of GRAM or more characters of any form of the token found in ``output``."""
    return sorted(
        f"{kind}:{form[i : i + GRAM]}"
        for kind, form in FORMS.items()
        for i in range(len(form) - GRAM + 1)
        if form[i : i + GRAM] in output
    )


def body(kind: str, form: str, offset: int, shape: str) -> bytes:
    text = "x" * offset + FORMS[form] + "x" * (FILLER - offset)
    if shape == "json":
        return json.dumps({"message": text, "error_code": "INTERNAL_ERROR"}).encode()
    if shape == "html":
        return f"<html><body><h1>500</h1><pre>{text}</pre></body></html>".encode()
    return text.encode()


SHAPES = ("plain", "json", "html")
CASES = [  # every form at every offset of a plain body; the raw token in JSON and HTML too
    (s, f, o)
    for s in SHAPES
    for f in FORMS
    for o in range(FILLER + 1)
    if s == "plain" or f == "raw"
]


def _answer(request: httpx.Request) -> httpx.Response:
    _, shape, form, offset = request.url.path.split("/")
    kind = {"json": "application/json", "html": "text/html"}.get(shape, "text/plain")
    return httpx.Response(500, headers={"Content-Type": kind},
                          content=body(kind, form, int(offset), shape))  # fmt: skip


async def _credential(tmp_path: Path) -> Any:
    options = CredentialOptions(
        token_env="C_TOKEN", username=USER, use_keyring=False,
        credentials_file=tmp_path / "none.toml",
    )  # fmt: skip
    return (await alookup("peer", options)).credential


async def test_the_token_at_every_offset_and_in_every_encoding_is_masked_before_the_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP plumbing of the GitHub, GitLab and Prometheus plugins, answered in process
    (2,410 answers; the end-to-end test below uses a real loopback server)."""
    monkeypatch.setenv("C_TOKEN", TOKEN)

    async def source() -> Any:
        return await _credential(tmp_path)

    api = HttpApi(backend="peer", base_url="http://peer.test", timeout=10, credential=source,
                  scheme="basic", transport=httpx.MockTransport(_answer))  # fmt: skip
    found: dict[str, list[str]] = {}
    seen = 0
    try:
        for shape, form, offset in CASES:
            try:
                await api.send("POST", f"{shape}/{form}/{offset}")
            except BackendError as exc:
                said = f"{exc} {exc.hint}"
                seen += "xxxxxxxx" in said  # the peer's words are there (a leak would show)
                if survivors(said):
                    found[f"{shape} {form} @{offset}"] = survivors(said)[:3]
    finally:
        await api.aclose()
    assert not found, f"{len(found)} of {len(CASES)} leak, e.g. {sorted(found.items())[:5]}"
    assert seen == len(CASES)
    assert len(CASES) == (8 + 2) * (FILLER + 1)  # the figure in docs/reliability.md: 2,410


# -- the finding, end to end -----------------------------------------------------------------

FINDING = ("x" * 176 + TOKEN).encode()


def _world(tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose CI (GitHub Actions) and deploy (GitLab) peers answer every request
    with HTTP 500 and the finding's body."""
    monkeypatch.setenv("C_TOKEN", TOKEN)
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))
    monkeypatch.setattr("console.identity.current_actor", lambda *a, **k: Actor(user="dev"))
    monkeypatch.setattr("console.plugins.http.sleep", lambda _s: asyncio.sleep(0))
    server.add(tmp_path.name, lambda _hit: (500, {"Content-Type": "text/plain"}, FINDING))
    url = server.url(tmp_path.name)
    common = f'use_keyring = false\ncredentials_file = "{tmp_path / "none.toml"}"'
    extra = f"""
[backends.ci]
type = "github-actions"
repository = "acme/m"
api_url = "{url}"
token_env = "C_TOKEN"
{common}

[backends.deploy]
type = "gitlab-ci"
project = "ml/m"
url = "{url}"
token_env = "C_TOKEN"
trigger_token_env = "C_TOKEN"
{common}
"""
    return make_workspace(tmp_path / "ws", extra=extra).path


def test_the_finding_leaves_no_part_of_the_token_in_any_output(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.cli.group import cli

    ws = str(_world(tmp_path, fault_server, monkeypatch))

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["-w", ws, *args])
        return f"{result.stdout}\n{result.stderr}"

    outputs = {
        "doctor": run("doctor"),
        "status --json": run("status", "--json"),
        "promote": run("promote", "m", "v1.1.0", "--to", "staging", "--reason", "canary"),
        "report": run("report", "m", "v1.1.0"),
        "audit --json": run("audit", "--json"),
    }
    assert "xxxxxxxx" in outputs["doctor"] and "xxxxxxxx" in outputs["status --json"]
    assert "deploy" in outputs["promote"], outputs["promote"]
    found = {k: survivors(v) for k, v in outputs.items() if survivors(v)}
    for stored in [tmp_path / "console.log", *(Path(ws) / ".cd4ml").glob("audit.sqlite*")]:
        if stored.exists() and survivors(stored.read_bytes().decode("utf-8", "replace")):
            found[stored.name] = survivors(stored.read_bytes().decode("utf-8", "replace"))
    assert not found, json.dumps(found, indent=1)
