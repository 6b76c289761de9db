"""Identity: the OS user from the uid, SUDO_USER only under root, the SSH client; roles; names."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from typing import Any

import pytest

from console.config.model import RolesConfig
from console.identity import (
    current_actor,
    is_same_person,
    principal,
    role_of,
    ssh_client,
    sudo_user,
)


def test_user_comes_from_the_uid_not_the_environment() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    actor = current_actor({"USER": "mallory", "LOGNAME": "mallory", "GIT_AUTHOR_NAME": "x"})
    assert actor.user == me


def _passwd(*names: str) -> Callable[[str], bool]:
    """A password database holding ``names`` (the machine's own is not the test's)."""
    return lambda name: name in names


def test_sudo_user_only_believed_for_root() -> None:
    env = {"SUDO_USER": "alice"}
    known = _passwd("alice")
    assert current_actor(env, uid=0, euid=0, known=known).sudo_user == "alice"
    assert current_actor(env, uid=0, euid=0, known=known).user == "root"
    assert principal(current_actor(env, uid=0, euid=0, known=known)) == "alice"
    assert current_actor(env, euid=1000, known=known).sudo_user is None
    assert "not run as root" in sudo_user(env, euid=1000, known=known)[1]


@pytest.mark.parametrize(
    "name",
    ["mallory", "alice\n", "alice\nseq 99 approve", " alice", "al\x1b[2Jice", "alice\x00",
     "x" * 300],
)  # fmt: skip
def test_sudo_user_naming_no_user_of_the_password_database_is_ignored_and_said(
    name: str,
) -> None:
    """A made-up SUDO_USER (or one whose newline would break the audit log's lines) is not
    believed even under root; the reason names it, escaped and short."""
    env = {"SUDO_USER": name}
    actor = current_actor(env, uid=0, euid=0, known=_passwd("alice"))
    assert actor.sudo_user is None and principal(actor) == "root"
    believed, why = sudo_user(env, euid=0, known=_passwd("alice"))
    assert believed is None
    assert "no such user in the password database" in why
    assert why.isprintable() and len(why) < 200


def test_sudo_user_is_looked_up_in_the_real_password_database() -> None:
    """The default lookup is pwd.getpwnam: root exists everywhere, a random name nowhere."""
    assert current_actor({"SUDO_USER": "root"}, uid=0, euid=0).sudo_user == "root"
    assert current_actor({"SUDO_USER": "no-such-user-7f3a"}, uid=0, euid=0).sudo_user is None


@pytest.mark.parametrize(
    ("env", "client"),
    [
        ({"SSH_CONNECTION": "10.1.2.3 51234 10.0.0.1 22"}, "10.1.2.3"),
        ({"SSH_CLIENT": "fe80::1 51234 22"}, "fe80::1"),
        ({}, None),
    ],
)
def test_ssh_client(env: dict[str, str], client: str | None) -> None:
    assert ssh_client(env) == client


ROLES = RolesConfig(
    admin=["erin"], release_manager=["dev", "erin"], viewer=["vic"], default="viewer",
    aliases={"alice": ["Alice Chen", "a.chen@corp.example"]},
)  # fmt: skip


@pytest.mark.parametrize(
    ("user", "role"), [("erin", "admin"), ("dev", "release_manager"), ("vic", "viewer"),
                       ("nobody", "viewer")]
)  # fmt: skip
def test_roles(user: str, role: str) -> None:
    assert role_of(user, ROLES) == role


SAME = [
    ("alice", "alice", True),
    ("alice", "Alice", True),
    ("alice", "Alice Chen", True),  # alias
    ("alice", "a.chen@corp.example", True),  # alias email
    ("alice", "Alice Chen <alice.chen@example.com>", True),  # email local part
    ("alice", "alice@example.com", True),
    ("dev", "Dev Patel <dev.patel@example.com>", True),
    ("dev", "Alice Chen <alice.chen@example.com>", False),
    ("bob", "Robert Brown", False),
    ("bob", "", False),
]


@pytest.mark.parametrize(("user", "name", "same"), SAME)
def test_is_same_person(user: str, name: str, same: bool) -> None:
    assert (is_same_person(user, [name], ROLES) is not None) is same


def test_doctor_says_who_acts_and_why_sudo_user_was_ignored(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Any]
) -> None:
    """Run as root by sudo with a SUDO_USER that names nobody (and would break a line of the
    audit log): doctor says who the console acts as, and that SUDO_USER was ignored."""
    from tests.release.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")
    monkeypatch.setattr("console.identity.os.geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "mallory\nseq 99 approve")
    out = run_cli("-w", str(ws.path), "doctor").stdout
    me = pwd.getpwuid(os.getuid()).pw_name
    assert f"you:       {me} (" in out
    assert "identity:  SUDO_USER='mallory\\nseq 99 approve' ignored: no such user" in out
    other = next(p.pw_name for p in pwd.getpwall() if p.pw_name != me)
    monkeypatch.setenv("SUDO_USER", other)  # a user of the password database: believed
    out = run_cli("-w", str(ws.path), "doctor").stdout
    assert f"you:       {other} (as {me})" in out and "ignored" not in out
