"""Identity: the OS user from the uid, SUDO_USER only under root, the SSH client; roles; names."""

from __future__ import annotations

import os
import pwd

import pytest

from console.config.model import RolesConfig
from console.identity import current_actor, is_same_person, principal, role_of, ssh_client


def test_user_comes_from_the_uid_not_the_environment() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    actor = current_actor({"USER": "mallory", "LOGNAME": "mallory", "GIT_AUTHOR_NAME": "x"})
    assert actor.user == me


def test_sudo_user_only_believed_for_root() -> None:
    env = {"SUDO_USER": "alice"}
    assert current_actor(env, uid=0, euid=0).sudo_user == "alice"
    assert current_actor(env, uid=0, euid=0).user == "root"
    assert principal(current_actor(env, uid=0, euid=0)) == "alice"
    assert current_actor(env, euid=1000).sudo_user is None


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
