"""What MLflow's (or a proxy's) error answers become: one line of text, the credential that was
refused named by where it came from, and the token masked before the text is cut — at every
offset of a long body and in every encoding a peer may echo it in."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from mlflow_fakes import make, reply

from console.plugins import BackendContext
from console.ports import BackendError, Unauthorized

TOKEN = "CANARY-7f3a+b/c=d_e9Q~x-5e2c41d0qz"
FILLER = 240  # the transport keeps 200 characters of a body: the token is cut at some offsets
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PROXY_401 = (
    "<!DOCTYPE html>\n<html>\n<head><title>401 Unauthorized</title>\n"
    "<style>h1 { color: #333; }</style></head>\n<body>\n<h1>Unauthorized</h1>\n"
    "<p>Sign in through the company proxy.</p>\n</body>\n</html>\n"
)
FORMS = {
    "raw": TOKEN,
    "url": quote(TOKEN, safe=""),
    "url+": quote_plus(TOKEN),
    "base64": base64.b64encode(TOKEN.encode()).decode(),
    "base64url": base64.urlsafe_b64encode(TOKEN.encode()).decode(),
    "hex": TOKEN.encode().hex(),
    "HEX": TOKEN.encode().hex().upper(),
}


def survivors(text: str) -> list[str]:
    return [
        f"{k}:{f[i : i + 6]}"
        for k, f in FORMS.items()
        for i in range(len(f) - 5)
        if f[i : i + 6] in text
    ]


async def test_an_html_error_page_is_one_line_of_its_words(
    ctx: BackendContext, tmp_path: Path
) -> None:
    """The proxy in front of MLflow answers with its own page: not the 7 lines of it."""
    reg, _ = make(ctx, reply(502, text=NGINX_502), tmp_path)
    with pytest.raises(BackendError) as caught:
        await reg.models()
    said = str(caught.value)
    assert "\n" not in said and "<" not in said, said
    assert "HTTP 502: 502 Bad Gateway nginx/1.25.3" in said, said


async def test_a_proxy_refusing_the_token_names_which_credential_was_sent(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    reg, _ = make(ctx, reply(401, text=PROXY_401), tmp_path, auth="bearer")
    with pytest.raises(Unauthorized) as caught:
        await reg.models()
    said = str(caught.value)
    assert "\n" not in said and "<" not in said and "color" not in said, said
    assert "401 Unauthorized Unauthorized Sign in through the company proxy." in said, said
    assert (
        "credential sent: credential 'mlflow' from environment variable MLFLOW_TRACKING_TOKEN"
        in said
    )
    assert not survivors(f"{said} {caught.value.hint}")


@pytest.mark.parametrize("shape", ["json", "plain"])
async def test_the_token_at_every_offset_and_in_every_encoding_is_masked_before_the_cut(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The server echoes the token in an error's message at each offset 0..240 of 240
    characters of filler, raw and in 6 encodings (2 x 7 x 241 = 3,374 answers): no 6
    characters of any form survive in the error. (HTTP 400: a read is not retried on it; a
    500's text goes through the same code, after 3 retries.)"""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    current: list[str] = [""]

    def answer(_request: httpx.Request) -> httpx.Response:
        if shape == "json":
            doc = {"error_code": "INTERNAL_ERROR", "message": current[0]}
            return httpx.Response(400, content=json.dumps(doc).encode())
        return httpx.Response(400, text=current[0], headers={"content-type": "text/plain"})

    reg, _ = make(ctx, answer, tmp_path, auth="bearer")
    found: dict[str, list[str]] = {}
    for kind, form in FORMS.items():
        for offset in range(FILLER + 1):
            current[0] = "x" * offset + form + "x" * (FILLER - offset)
            with pytest.raises(BackendError) as caught:
                await reg.models()
            said = f"{caught.value} {caught.value.hint}"
            assert "xxxxxxxx" in said  # the server's words are shown (a leak would be seen)
            if survivors(said):
                found[f"{kind} @{offset}"] = survivors(said)[:3]
    assert not found, f"{len(found)} leak, e.g. {sorted(found.items())[:4]}"
