"""Failures over real loopback HTTP: credentials, rate limits (403/429 with reset headers),
5xx retries within the budget, connection errors, and secrets kept out of every message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cd4ml_console_github_actions import GitHubActionsConfig
from cd4ml_console_github_actions.actions import GitHubActions
from github_stub import DOCS, TOKEN, GitHubStub, Scripted

from console.plugins import http as tp
from console.ports import BackendError, NotFound, Unauthorized, Unreachable

SHA = "a" * 40
Make = Callable[..., GitHubActions]
RUNS = r".*/actions/runs"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries and rate-limit waits are recorded instead of slept."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(tp, "sleep", fake_sleep)
    monkeypatch.setattr(tp, "wall_clock", lambda: time.time() + sum(slept))
    return slept


def error(
    status: int, message: str, headers: dict[str, str] | None = None, times: int = 1
) -> Scripted:
    body = {"message": message, "documentation_url": DOCS, "status": str(status)}
    return Scripted("GET", RUNS, status, body, headers or {}, times)


async def test_a_refused_token_is_unauthorized_and_never_shown(
    github: GitHubStub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD4ML_TEST_WRONG_TOKEN", "ghp_wrongwrongwrong")
    backend = make(token_env="CD4ML_TEST_WRONG_TOKEN")
    with pytest.raises(Unauthorized, match="refused the credentials") as caught:
        await backend.runs_for(SHA)
    text = f"{caught.value} {caught.value.hint} {backend!r} {backend.api!r}"
    assert "ghp_wrong" not in text and TOKEN not in text
    assert "cd4ml-console login github-actions" in caught.value.hint
    assert f"{github.base}/repos/acme/fraud-model/actions/runs" in str(caught.value)
    assert "head_sha" not in str(caught.value)  # no query string in messages
    assert "ghp_wrong" not in repr(await backend.api.credential())


async def test_no_token_anywhere_says_where_it_looked(make: Make) -> None:
    backend = make(token_env="CD4ML_TEST_UNSET_TOKEN")
    with pytest.raises(Unauthorized, match="no credential 'github-actions' found") as caught:
        await backend.runs_for(SHA)
    assert "CD4ML_TEST_UNSET_TOKEN" in str(caught.value)


async def test_forbidden_without_a_rate_limit_is_a_permission_problem(
    github: GitHubStub, make: Make
) -> None:
    github.scripted.append(error(403, "Resource not accessible by integration"))
    with pytest.raises(Unauthorized, match=r"forbidden .*Resource not accessible") as caught:
        await make().runs_for(SHA)
    assert "Actions read" in caught.value.hint


async def test_an_exhausted_rate_limit_says_when_it_resets_and_stops_asking(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    reset = int(time.time()) + 1800
    github.scripted.append(
        error(
            403,
            "API rate limit exceeded for user ID 1.",
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
    )
    backend = make()
    with pytest.raises(Unreachable, match=r"rate limit .* is exhausted; it resets at") as caught:
        await backend.runs_for(SHA)
    assert "HTTP 403" in str(caught.value) and waits == []
    asked = len(github.seen)
    with pytest.raises(Unreachable, match="was not requested"):
        await backend.runs_for(SHA)
    assert len(github.seen) == asked  # the limit is honoured without another request


async def test_a_limit_that_resets_soon_is_waited_for(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    github.add_run(1, SHA)
    reset = int(time.time()) + 3
    github.scripted.append(
        error(
            403,
            "API rate limit exceeded",
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
    )
    runs = await make(jobs=False).runs_for(SHA)
    assert [r.id for r in runs] == ["1"]
    assert len(waits) == 1 and 1 <= waits[0] <= 4


async def test_429_with_retry_after_is_retried(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    github.add_run(1, SHA)
    github.scripted.append(
        error(429, "You have exceeded a secondary rate limit", {"Retry-After": "2"})
    )
    runs = await make(jobs=False).runs_for(SHA)
    assert len(runs) == 1 and waits == [2.0]


async def test_a_secondary_limit_asking_for_a_minute_is_not_waited_for(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    github.scripted.append(error(403, "You have exceeded a secondary rate limit"))
    with pytest.raises(Unreachable, match=r"in 60s"):
        await make().runs_for(SHA)
    assert waits == []


async def test_server_errors_are_retried_three_times_at_most(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    github.add_run(1, SHA)
    github.scripted.append(error(502, "Server Error", times=2))
    assert len(await make(jobs=False).runs_for(SHA)) == 1
    assert waits == list(tp.BACKOFF[:2])

    waits.clear()
    github.scripted.append(error(500, "Server Error", times=10))
    with pytest.raises(Unreachable, match=r"HTTP 500.*tried 4 times"):
        await make(jobs=False).runs_for("f" * 40)
    assert len(waits) == 3


async def test_retries_stop_within_ten_seconds(
    github: GitHubStub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]

    async def slow_sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(tp, "sleep", slow_sleep)
    monkeypatch.setattr(tp, "monotonic", lambda: clock[0])
    github.scripted.append(error(503, "busy", {"Retry-After": "6"}, times=10))
    with pytest.raises(Unreachable, match="tried 2 times"):
        await make(jobs=False).runs_for(SHA)
    assert clock[0] == 6.0  # a second 6 s wait would end after the 10 s budget


async def test_not_found_names_the_url(github: GitHubStub, make: Make) -> None:
    backend = make(repository="acme/missing")
    with pytest.raises(NotFound, match=r"/repos/acme/missing/actions/runs was not found"):
        await backend.runs_for(SHA)


async def test_an_unreachable_api_is_reported_with_its_address(
    make: Make, waits: list[float]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = make(api_url=f"http://user:pw@127.0.0.1:{port}/api/v3")
    with pytest.raises(Unreachable, match="could not connect to") as caught:
        await backend.runs_for(SHA)
    assert f"http://127.0.0.1:{port}/api/v3/repos" in str(caught.value)
    assert "pw" not in str(caught.value).replace("tried", "")
    assert len(waits) == 3


async def test_check_describes_the_repository_and_the_rate_limit(
    github: GitHubStub, make: Make
) -> None:
    github.add_workflow("deploy.yml", "Deploy", 7)
    said = await make(deploy_workflow="deploy.yml").check()
    assert said.startswith(f"acme/fraud-model at {github.base}: 1 workflows")
    assert "deploy workflow deploy.yml is active" in said and "4999 requests left" in said


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"repository": "acme"}, "OWNER/NAME"),
        ({"deploy_inputs": {"model": "{modle}"}}, "unknown placeholder"),
        ({"deploy_inputs": {f"i{n}": "x" for n in range(26)}}, "at most 25"),
        ({"per_page": 101}, "per_page"),
        ({"tokn_env": "X"}, "tokn_env"),
    ],
)
def test_config_errors_name_the_problem(options: dict[str, Any], complaint: str) -> None:
    from pydantic import ValidationError

    options.setdefault("repository", "acme/fraud-model")
    with pytest.raises(ValidationError, match=complaint):
        GitHubActionsConfig(**options)


def _response(status: int, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=body or {"message": ""})


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1100"}, "", None),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1100"}, "", 100.0),
        (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1100"}, "denied", None),
        (403, {}, "You have exceeded a secondary rate limit", 60.0),
        (429, {"retry-after": "7"}, "", 7.0),
        (429, {"retry-after": "Thu, 01 Jan 1970 00:16:50 GMT"}, "", 10.0),
        (429, {"ratelimit-remaining": "0", "ratelimit-reset": "1030"}, "", 30.0),  # GitLab
        (429, {}, "", 60.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "900"}, "", 0.0),
    ],
)
def test_rate_limit_wait(
    status: int, headers: dict[str, str], message: str, wait: float | None
) -> None:
    resp = _response(status, headers, {"message": message})
    assert tp.rate_limit_wait(resp, now=1000.0) == wait


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (
            "https://user:secret@api.example:8443/v3/repos?token=abc",
            "https://api.example:8443/v3/repos",
        ),
        ("http://[::1]:9090/api", "http://[::1]:9090/api"),
        ("not a url", "<invalid URL>"),
    ],
)
def test_safe_url_drops_user_info_and_query(url: str, safe: str) -> None:
    assert tp.safe_url(url) == safe


async def test_mutations_are_sent_once_even_when_the_server_fails(
    github: GitHubStub, make: Make, waits: list[float]
) -> None:
    github.add_workflow("deploy.yml", "Deploy", 7)
    github.scripted.append(
        Scripted(
            "POST", r".*/dispatches", 502, {"message": "Server Error", "documentation_url": DOCS}
        )
    )
    with pytest.raises(BackendError, match="HTTP 502"):
        await make(deploy_workflow="deploy.yml").deploy("fraud", "v2", "production", actor="alice")
    assert [s.method for s in github.seen].count("POST") == 1 and waits == []


NGINX_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
PROXY_401 = (
    b"<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
    b"<title>401 Authorization Required</title>\n<style>body { font-family: sans-serif; }</style>"
    b"\n</head>\n<body>\n<h1>Authorization Required</h1>\n<p>This server could not verify that "
    b"you are authorized to access the document requested.</p>\n<hr>\n"
    b"<address>oauth2-proxy</address>\n</body>\n</html>\n"
)


async def test_an_error_page_is_one_line_of_its_words(github: GitHubStub, make: Make) -> None:
    """A web server's HTML 404 in front of the API: the message is one line, the page's words
    (no tags, no style), not the 8 lines of the page."""
    github.scripted.append(Scripted("GET", RUNS, 404, NGINX_404, checked=False))
    with pytest.raises(NotFound) as caught:
        await make().runs_for(SHA)
    said = str(caught.value)
    assert "\n" not in said and "\r" not in said and "<" not in said, said
    assert said.endswith("was not found (HTTP 404: 404 Not Found nginx/1.25.3)"), said


async def test_a_proxy_refusing_the_credential_names_where_it_came_from(
    github: GitHubStub, make: Make
) -> None:
    """A proxy's 401 page: one line of its words, and which credential was sent and refused
    (its name and the environment variable, never the value)."""
    github.scripted.append(Scripted("GET", RUNS, 401, PROXY_401, checked=False))
    with pytest.raises(Unauthorized) as caught:
        await make().runs_for(SHA)
    said = str(caught.value)
    assert "\n" not in said and "<" not in said and "font-family" not in said, said
    assert "HTTP 401: 401 Authorization Required Authorization Required This server" in said
    assert (
        "sent credential 'github-actions' from environment variable CD4ML_TEST_GITHUB_TOKEN" in said
    )
    assert TOKEN not in said and TOKEN[:8] not in said
