"""Who is acting: the OS user, the sudo user and the SSH client, and the role the config gives.

The user comes from the process's real uid through the password database, never from
``$USER``/``$LOGNAME`` or git's ``user.name``, which anyone can set. ``SUDO_USER`` is only
believed when the process runs as root (``sudo`` sets it; any user can set it for their own
unprivileged process). The SSH client address is informational: it is recorded, never trusted
for a decision. Services take an identity provider (a callable returning an Actor) so tests can
act as other people without any environment switch in production code.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from console.config.model import RolesConfig
from console.domain import Actor

Role = Literal["viewer", "release_manager", "admin"]
IdentityProvider = Callable[[], Actor]

ROLE_ORDER: tuple[Role, ...] = ("viewer", "release_manager", "admin")
_EMAIL = re.compile(r"<([^<>@\s]+@[^<>\s]+)>|([^<>@\s]+@[^<>\s]+)")


def os_user(uid: int | None = None) -> str:
    """The login name of ``uid`` (default: the real uid) from the password database."""
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers): record the number
        return f"uid:{uid}"


def ssh_client(environ: Mapping[str, str] | None = None) -> str | None:
    """The SSH client's address from ``SSH_CONNECTION`` (or the older ``SSH_CLIENT``)."""
    env = os.environ if environ is None else environ
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        parts = env.get(name, "").split()
        if parts:
            return parts[0]
    return None


def current_actor(
    environ: Mapping[str, str] | None = None,
    *,
    uid: int | None = None,
    euid: int | None = None,
) -> Actor:
    """The person at the keyboard, as far as the OS can tell."""
    env = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    sudo_user = env.get("SUDO_USER", "").strip() if euid == 0 else ""
    return Actor(user=os_user(uid), sudo_user=sudo_user or None, ssh_client=ssh_client(env))


def principal(actor: Actor) -> str:
    """The person accountable for an action: the sudo user when root acts for one."""
    return actor.sudo_user or actor.user


def role_of(user: str, roles: RolesConfig) -> Role:
    """The strongest role ``user`` is listed under, else the configured default."""
    if user in roles.admin:
        return "admin"
    if user in roles.release_manager:
        return "release_manager"
    if user in roles.viewer:
        return "viewer"
    return roles.default


def actor_role(actor: Actor, roles: RolesConfig) -> Role:
    """The role of ``actor``'s principal."""
    return role_of(principal(actor), roles)


def identity_details(actor: Actor) -> dict[str, str]:
    """The parts of an actor recorded with every audit event."""
    out = {"user": actor.user}
    if actor.sudo_user:
        out["sudo_user"] = actor.sudo_user
    if actor.ssh_client:
        out["ssh_client"] = actor.ssh_client
    if actor.demo_persona_of:
        out["demo_persona_of"] = actor.demo_persona_of
    return out


def _forms(name: str) -> set[str]:
    """Lower-cased ways a name can match a user: the whole text, the name part of
    ``Name <email>``, the email, and the email's local part (and its first dot segment)."""
    text = name.strip().lower()
    if not text:
        return set()
    out = {text}
    match = _EMAIL.search(text)
    if match:
        email = match.group(1) or match.group(2)
        out.add(email)
        local = email.split("@", 1)[0]
        out.update({local, local.split(".", 1)[0], local.split("+", 1)[0]})
        bare = _EMAIL.sub("", text).strip()
        if bare:
            out.add(bare)
    return out


def is_same_person(user: str, names: Iterable[str], roles: RolesConfig) -> str | None:
    """The first of ``names`` (author names, emails, tagger names) that is ``user``, or None.

    A name is ``user`` when it equals the user name, one of ``roles.aliases[user]``, or its
    email's local part is the user name. Matching errs towards "same person": a false match
    refuses an approval (safe), a missed one would let an author approve their own work.
    """
    mine = {user.lower()}
    for alias in roles.aliases.get(user, []):
        mine |= _forms(alias)
    for name in names:
        if _forms(name) & mine:
            return name
    return None
