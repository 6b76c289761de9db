"""Credentials: keyring first, then an environment variable, then a 0600 file; secrets masked.

Test keyrings are ``viable = False`` so keyring's own auto-detection never picks them up for
other tests in the same process; they are installed by patching ``keyring.core``.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
import keyring.core
import pytest
from click.testing import CliRunner
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked
from pydantic import SecretStr

from console.cli import login as cli_login
from console.plugins import credentials
from console.plugins.credentials import (
    Credential,
    CredentialError,
    CredentialOptions,
    alookup,
    keyring_status,
    lookup,
    read_credentials_file,
    require,
    store_in_file,
)

SECRET = 's3cr3t-Tok3n-"quoted"-\\-é'


class MemoryKeyring(KeyringBackend):
    """A recommended (priority 1) keyring that keeps secrets in a dict."""

    viable = False  # never auto-detected
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class PlaintextKeyring(MemoryKeyring):
    """Looks like keyrings.alt's file backend: secrets readable on disk, priority < 1."""

    priority = 0.5  # type: ignore[assignment]


class SneakyKeyring(MemoryKeyring):
    """Not named plaintext, but keyring itself would not recommend it (priority < 1)."""

    priority = 0.2  # type: ignore[assignment]


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the collection is locked")


class SlowKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(0.3)
        return None


def use_keyring(monkeypatch: pytest.MonkeyPatch, backend: Any) -> Any:
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    return backend


@pytest.fixture
def opts(tmp_path: Path) -> CredentialOptions:
    return CredentialOptions(token_env="TEST_TOKEN", credentials_file=tmp_path / "creds.toml")


def write_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- keyring ------------------------------------------------------------------------------


def test_this_machine_has_no_keyring_backend() -> None:
    """The bastion case: keyring's fail backend raises NoKeyringError; we report, not raise."""
    import keyring
    from keyring.backends import fail

    if not isinstance(keyring.get_keyring(), fail.Keyring):
        pytest.skip("a keyring backend is installed here")
    with pytest.raises(keyring.errors.NoKeyringError):
        keyring.get_password("cd4ml-console", "x")
    status = keyring_status()
    assert not status.usable and "no keyring backend" in status.reason


def test_keyring_wins_over_env_and_file(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    kr = use_keyring(monkeypatch, MemoryKeyring())
    kr.set_password("cd4ml-console", "mlflow", SECRET)
    write_file(opts.credentials_file, '[mlflow]\ntoken = "from-file"\n')  # type: ignore[arg-type]
    found = lookup("mlflow", opts, env={"TEST_TOKEN": "from-env"})
    cred = require(found)
    assert cred.source == "keyring"
    assert cred.secret.get_secret_value() == SECRET
    assert "test_credentials.MemoryKeyring" in cred.location


def test_plaintext_keyring_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    kr = use_keyring(monkeypatch, PlaintextKeyring())
    kr.set_password("cd4ml-console", "mlflow", SECRET)
    status = keyring_status()
    assert status.plaintext and not status.usable
    assert "plain text" in status.reason and "allow_plaintext_keyring = true" in status.reason

    found = lookup("mlflow", opts, env={"TEST_TOKEN": "from-env"})
    assert found.credential is not None and found.credential.source == "env"
    assert "plain text" in found.tried[0]

    allowed = opts.model_copy(update={"allow_plaintext_keyring": True})
    cred = require(lookup("mlflow", allowed, env={}))
    assert cred.source == "keyring" and "(plaintext, allowed)" in cred.location


def test_a_keyring_keyring_does_not_recommend_counts_as_plaintext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_keyring(monkeypatch, SneakyKeyring())
    assert keyring_status().plaintext


def test_a_failing_keyring_falls_back_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    use_keyring(monkeypatch, LockedKeyring())
    found = lookup("mlflow", opts, env={"TEST_TOKEN": SECRET})
    assert found.credential is not None and found.credential.source == "env"
    assert "KeyringLocked: the collection is locked" in found.tried[0]


async def test_a_blocking_keyring_times_out(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    use_keyring(monkeypatch, SlowKeyring())
    with pytest.raises(CredentialError, match="use_keyring = false"):
        await alookup("mlflow", opts, timeout=0.05)


# -- environment and file -----------------------------------------------------------------


def test_env_then_file_and_where_each_came_from(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    use_keyring(monkeypatch, MemoryKeyring())  # empty
    cred = require(lookup("mlflow", opts, env={"TEST_TOKEN": SECRET}))
    assert (cred.source, cred.location) == ("env", "environment variable TEST_TOKEN")

    path = write_file(opts.credentials_file, '[mlflow]\npassword = "pw"\nusername = "al"\n')  # type: ignore[arg-type]
    cred = require(lookup("mlflow", opts, env={}))
    assert (cred.source, cred.location, cred.username) == ("file", f"file {path}", "al")
    assert cred.describe() == f"credential 'mlflow' (user al) from file {path}"


def test_nothing_found_says_where_it_looked_and_how_to_fix(opts: CredentialOptions) -> None:
    off = opts.model_copy(update={"use_keyring": False})
    found = lookup("mlflow", off, env={})
    assert found.credential is None
    with pytest.raises(CredentialError) as err:
        require(found)
    text = str(err.value)
    assert "use_keyring = false" in text and "TEST_TOKEN: not set" in text
    assert f"{opts.credentials_file}: does not exist" in text
    assert "cd4ml-console login mlflow" in text


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_file_others_can_access_is_refused_with_chmod(opts: CredentialOptions, mode: int) -> None:
    path = write_file(opts.credentials_file, f'[mlflow]\ntoken = "{SECRET[:6]}"\n', mode)  # type: ignore[arg-type]
    off = opts.model_copy(update={"use_keyring": False})
    with pytest.raises(CredentialError) as err:
        lookup("mlflow", off, env={})
    assert str(path) in str(err.value) and f"chmod 600 {path}" in str(err.value)
    assert f"{mode:04o}" in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_a_file_owned_by_someone_else_is_refused(opts: CredentialOptions) -> None:
    path = write_file(opts.credentials_file, '[mlflow]\ntoken = "x"\n')  # type: ignore[arg-type]
    os.chown(path, 4242, -1)
    with pytest.raises(CredentialError, match="belongs to uid 4242"):
        read_credentials_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[mlflow]\ntoken = "{SECRET[:8]}', "is not valid TOML"),
        ('[mlflow]\ntoken = "a"\npassword = "b"\n', "exactly one of token or password"),
        ('[mlflow]\nusername = "al"\n', "exactly one of token or password"),
        ('[mlflow]\ntoken = "a"\ntokn = "b"\n', "unknown key(s): tokn"),
    ],
)
def test_a_malformed_file_is_an_error_that_never_shows_the_secret(
    opts: CredentialOptions, text: str, message: str
) -> None:
    write_file(opts.credentials_file, text)  # type: ignore[arg-type]
    off = opts.model_copy(update={"use_keyring": False})
    with pytest.raises(CredentialError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        lookup("mlflow", off, env={})
    assert SECRET[:6] not in str(e.value)
    assert e.value.__context__ is None and e.value.__cause__ is None  # no chained parse error


def test_store_in_file_writes_0600_atomically_and_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "credentials.toml"
    store_in_file("ci", SecretStr("ci-token"), path)
    store_in_file("mlflow", SecretStr(SECRET + "\n\x7f\t"), path, username="alice")
    store_in_file("mlflow", SecretStr(SECRET), path, username="alice")  # replaces
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    entries = read_credentials_file(path)
    assert entries["ci"]["token"].get_secret_value() == "ci-token"
    assert entries["mlflow"]["token"].get_secret_value() == SECRET
    assert entries["mlflow"]["username"] == "alice"
    assert [p.name for p in path.parent.iterdir()] == ["credentials.toml"]


def test_store_in_file_refuses_to_touch_an_unsafe_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "credentials.toml", '[ci]\ntoken = "x"\n', 0o644)
    with pytest.raises(CredentialError, match="chmod 600"):
        store_in_file("mlflow", SecretStr("y"), path)
    assert path.read_text() == '[ci]\ntoken = "x"\n'


# -- masking ------------------------------------------------------------------------------


def test_username_precedence_config_then_file_then_env(opts: CredentialOptions) -> None:
    write_file(opts.credentials_file, '[m]\ntoken = "t"\nusername = "from-file"\n')  # type: ignore[arg-type]
    base = opts.model_copy(update={"use_keyring": False, "username_env": "TEST_USER"})
    env = {"TEST_USER": "from-env"}
    assert require(lookup("m", base, env=env)).username == "from-file"
    configured = base.model_copy(update={"username": "from-config"})
    assert require(lookup("m", configured, env=env)).username == "from-config"
    env["TEST_TOKEN"] = "t"
    assert require(lookup("m", base, env=env)).username == "from-env"


def test_a_credential_never_shows_its_secret() -> None:
    cred = Credential(
        name="mlflow", source="env", location="environment variable X",
        secret=SecretStr(SECRET), username="alice",
    )  # fmt: skip
    for text in (repr(cred), str(cred), cred.model_dump_json(), cred.describe(), f"{cred!r}"):
        assert SECRET not in text
    assert cred.authorization("bearer") == f"Bearer {SECRET}"
    import base64

    assert base64.b64decode(cred.authorization("basic")[6:]).decode() == f"alice:{SECRET}"


def test_no_frame_of_ours_ever_holds_the_secret_as_a_plain_str(
    monkeypatch: pytest.MonkeyPatch, opts: CredentialOptions
) -> None:
    """Textual's crash output prints locals: trace every line of console/plugins/credentials.py."""
    ours = {credentials.__file__, cli_login.__file__}
    leaks: list[str] = []

    def check(frame: FrameType) -> None:
        for name, value in frame.f_locals.items():
            if isinstance(value, str) and SECRET in value:
                leaks.append(f"{frame.f_code.co_name}:{frame.f_lineno}:{name}")

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in ours:
            return None

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            check(frame)
            return local

        check(frame)
        return local

    kr = use_keyring(monkeypatch, MemoryKeyring())
    path = opts.credentials_file
    assert path is not None
    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        store_in_file("mlflow", SecretStr(SECRET), path, username="al")
        from_file = require(lookup("mlflow", opts, env={}))
        from_env = require(lookup("other", opts, env={"TEST_TOKEN": SECRET}))
        credentials.store_in_keyring("kr", SecretStr(SECRET), opts)
        from_keyring = require(lookup("kr", opts, env={}))
        headers = [c.authorization("basic") for c in (from_file, from_env, from_keyring)]
    finally:
        sys.settrace(None)
        threading.settrace(None)
    assert kr.items[("cd4ml-console", "kr")] == SECRET
    assert len(headers) == 3
    assert leaks == []


# -- cd4ml-console login ------------------------------------------------------------------


class State:
    def __init__(self, workspace: Path, config_file: Path | None = None) -> None:
        self.workspace = workspace
        self.config_file = config_file


@pytest.fixture
def run_login(tmp_path: Path) -> Iterator[Any]:
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = State(tmp_path / "ws", tmp_path / "ws" / "cd4ml-console.toml")

    cli_login.register(root)
    (tmp_path / "ws").mkdir()
    config = tmp_path / "ws" / "cd4ml-console.toml"
    config.write_text(
        '[backends.registry]\ntype = "mlflow"\nurl = "http://127.0.0.1:5000"\n'
        f'token_env = "MY_TOKEN"\ncredentials_file = "{tmp_path / "creds.toml"}"\n'
    )

    def run(*args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(root, ["login", *args], input=input)

    yield run


def test_login_without_a_keyring_names_the_env_var_and_the_file_option(
    run_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.backends import fail

    use_keyring(monkeypatch, fail.Keyring())
    result = run_login("mlflow", input=SECRET + "\n")
    assert result.exit_code == 1
    assert "export MY_TOKEN=" in result.output
    assert "cd4ml-console login mlflow --file" in result.output
    assert SECRET not in result.output


def test_login_stores_in_the_keyring_without_echo(
    run_login: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kr = use_keyring(monkeypatch, MemoryKeyring())
    result = run_login("registry", input=SECRET + "\n")  # by kind
    assert result.exit_code == 0, result.output
    assert kr.items[("cd4ml-console", "mlflow")] == SECRET
    assert SECRET not in result.output
    assert "stored credential 'mlflow' in keyring" in result.output


def test_login_file_writes_the_configured_0600_file(
    run_login: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.backends import fail

    use_keyring(monkeypatch, fail.Keyring())
    result = run_login("mlflow", "--file", "--username", "alice", input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    path = tmp_path / "creds.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cred = require(lookup("mlflow", CredentialOptions(use_keyring=False, credentials_file=path)))
    assert (cred.secret.get_secret_value(), cred.username) == (SECRET, "alice")
    assert SECRET not in result.output


def test_login_refuses_a_plaintext_keyring(run_login: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use_keyring(monkeypatch, PlaintextKeyring())
    result = run_login("mlflow", input=SECRET + "\n")
    assert result.exit_code == 1 and "plain text" in result.output
    assert kr.items == {}


def test_login_refuses_an_empty_secret(run_login: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kr = use_keyring(monkeypatch, MemoryKeyring())
    result = run_login("mlflow", "--stdin", input="\n")
    assert result.exit_code == 1 and "empty secret" in result.output
    assert kr.items == {}


def test_credentials_file_must_be_absolute_or_home_relative() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="use an absolute path or ~/"):
        CredentialOptions(credentials_file=Path("secrets/creds.toml"))
    home = CredentialOptions(credentials_file=Path("~/creds.toml")).credentials_file
    assert home == Path.home() / "creds.toml"
