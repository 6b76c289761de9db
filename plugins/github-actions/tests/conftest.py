"""Fixtures of the github-actions plugin's tests: the loopback GitHub stub and backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cd4ml_console_github_actions import PLUGIN, GitHubActionsConfig
from cd4ml_console_github_actions.actions import GitHubActions
from github_stub import OWNER, REPO, TOKEN, GitHubStub, serve

from console.plugins import BackendContext

TOKEN_ENV = "CD4ML_TEST_GITHUB_TOKEN"


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    """A running stub; the test fails if any response it sent broke GitHub's schemas."""
    stub = GitHubStub()
    with serve(stub):
        yield stub
    assert stub.errors == [], "the stub sent responses GitHub's schemas reject"


@pytest.fixture
async def make(
    github: GitHubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., GitHubActions]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    made: list[GitHubActions] = []

    def factory(**options: Any) -> GitHubActions:
        options.setdefault("repository", f"{OWNER}/{REPO}")
        options.setdefault("api_url", github.base)
        options.setdefault("token_env", TOKEN_ENV)
        options.setdefault("use_keyring", False)
        options.setdefault("credentials_file", tmp_path / "none.toml")
        options.setdefault("poll_seconds", 0.01)
        ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=None, timeout=5.0)
        backend: GitHubActions = PLUGIN.factory(GitHubActionsConfig(**options), ctx)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()
