"""A group workspace on one bastion (docs/team.md): several OS users act on one clone.

What it needs: git keeps new files group-writable (``core.sharedRepository=group``); every
folder of ``.git`` and of the state folder belongs to the group, is group-writable and setgid
(so new files inherit the group); the audit SQLite file and its -wal/-shm files are
group-writable; git trusts the clone for every user (``safe.directory``, since the clone
belongs to one of them). ``check_shared`` says what is missing, ``init_shared`` sets it up.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import ConsoleConfig

if TYPE_CHECKING:
    from console.ports import AuditStore

SHARED_VALUES = frozenset({"group", "true", "1", "all", "world", "everybody", "2"})
GIT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Finding:
    """One line of ``doctor``'s shared section: ``mark`` is ok, FAIL, note or --."""

    mark: str
    text: str


@dataclass(frozen=True)
class Layout:
    """Where a workspace keeps what several users write."""

    root: Path
    git_dir: Path | None
    state_dir: Path
    audit_file: Path | None  # the SQLite audit log, when the store is one


def layout(config: ConsoleConfig, store: AuditStore | None = None) -> Layout:
    root = config.root
    dot_git = root / ".git"
    git_dir: Path | None = dot_git if dot_git.is_dir() else None
    if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.removeprefix("gitdir:").strip()).resolve()
    audit = config.backend("audit")
    path = getattr(store, "path", None)
    sqlite = audit is not None and audit.type == "sqlite-audit" and isinstance(path, Path)
    return Layout(root, git_dir, config.state_path, path if sqlite else None)


def _git(args: list[str], timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def shared_setting(git_dir: Path, timeout: float = GIT_TIMEOUT) -> str:
    """``core.sharedRepository`` as the clone's own config file says ("" when unset)."""
    config = str(git_dir / "config")
    done = _git(["config", "--file", config, "--get", "core.sharedRepository"], timeout)
    return done.stdout.strip().lower() if done.returncode == 0 else ""


def is_group_shared(value: str) -> bool:
    if value in SHARED_VALUES:
        return True
    try:  # an octal mode such as 0660: shared when the group may write
        return bool(int(value, 8) & 0o020)
    except ValueError:
        return False


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``top`` and everything under it (symlinks not followed), with their lstat."""
    if not top.exists():
        return
    yield top, top.lstat()
    for folder, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            path = Path(folder, name)
            try:
                yield path, path.lstat()
            except OSError:
                continue


def _problem(st: os.stat_result, gid: int, *, writable: bool) -> str:
    """What a file or folder lacks for the group (``writable``: files the group must write)."""
    if stat.S_ISLNK(st.st_mode):
        return ""
    if st.st_gid != gid:
        return "another group"
    if stat.S_ISDIR(st.st_mode):
        if st.st_mode & 0o070 != 0o070:
            return "a folder the group can not write"
        if not st.st_mode & stat.S_ISGID:
            return "a folder without setgid"
        return ""
    need = 0o060 if writable else 0o040
    if st.st_mode & need != need:
        return "a file the group can not write" if writable else "a file the group can not read"
    return ""


def _tree_findings(top: Path, gid: int, *, writable: bool, label: str) -> list[Finding]:
    bad = [(p, why) for p, st in _walk(top) if (why := _problem(st, gid, writable=writable))]
    if not bad:
        return [Finding("ok", f"{label} {top}: group-owned, group-writable, setgid folders")]
    first, why = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return [Finding("FAIL", f"{label}: {first} is {why}{more}")]


def _audit_findings(audit: Path, gid: int) -> list[Finding]:
    out = []
    for path in (audit, Path(f"{audit}-wal"), Path(f"{audit}-shm")):
        if not path.exists():
            continue
        why = _problem(path.stat(), gid, writable=True)
        if why:
            out.append(Finding("FAIL", f"audit log: {path} is {why}"))
    folder = audit.parent
    why = _problem(folder.stat(), gid, writable=True) if folder.exists() else "missing"
    if why:  # SQLite creates the -wal, -shm and journal files beside the log
        out.append(Finding("FAIL", f"audit log: its folder {folder} is {why}"))
    return out or [Finding("ok", f"audit log {audit}: it and its -wal/-shm files group-writable")]


def trusted_by_git(root: Path, timeout: float = GIT_TIMEOUT) -> str:
    """ "" when git works in ``root`` for this user; else git's complaint (dubious ownership)."""
    from console.git.cmd import git_env

    # as the console runs git: without the system config
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--git-dir"],
        env=git_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or ["git refused the folder"])[0]


def _in_group(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_shared(
    config: ConsoleConfig, store: AuditStore | None = None, timeout: float = GIT_TIMEOUT
) -> list[Finding]:
    """``doctor``'s shared section: nothing to say of a one-user workspace but how to share
    it; for a group workspace, each thing it needs that is missing, with the fix. Each git
    call is bounded by ``timeout``; a git that does not answer is a finding, not a crash."""
    try:
        return _check_shared(config, store, timeout)
    except subprocess.TimeoutExpired as exc:
        return [
            Finding(
                "FAIL",
                f"the group workspace can not be checked: {exc.cmd[0]} "
                f"{exc.cmd[1]} did not answer within {timeout:g}s",
            )
        ]
    except OSError as exc:
        return [Finding("FAIL", f"the group workspace can not be checked: {exc}")]


def _check_shared(config: ConsoleConfig, store: AuditStore | None, timeout: float) -> list[Finding]:
    where = layout(config, store)
    if where.git_dir is None:
        return []
    setting = shared_setting(where.git_dir, timeout)
    st = where.git_dir.stat()
    shared = is_group_shared(setting) or bool(st.st_mode & 0o020) or st.st_uid != os.geteuid()
    if not shared:
        return [
            Finding(
                "--",
                "one user's workspace; `cd4ml-console init --shared GROUP` "
                "sets up a group workspace (docs/team.md)",
            )
        ]
    gid, name = st.st_gid, group_name(st.st_gid)
    fix = f"fix: cd4ml-console -w {where.root} init --shared {name}"
    out = [
        Finding("ok", f"core.sharedRepository={setting}: git keeps new files group-writable")
        if is_group_shared(setting)
        else Finding(
            "FAIL",
            "core.sharedRepository is not set: git creates files only their "
            f"owner can write — {fix}",
        ),
    ]
    out += _tree_findings(where.git_dir, gid, writable=False, label="git")
    if where.state_dir.exists():
        # Files there are replaced by a rename (the folder's write bit is what counts), but
        # the SQLite files, which are written in place: those are checked below.
        out += _tree_findings(where.state_dir, gid, writable=False, label="state")
    else:
        out.append(Finding("FAIL", f"state: {where.state_dir} does not exist yet — {fix}"))
    if where.audit_file is not None and where.audit_file.exists():
        out += _audit_findings(where.audit_file, gid)
    out = [
        Finding(f.mark, f"{f.text} — {fix}") if f.mark == "FAIL" and "fix:" not in f.text else f
        for f in out
    ]
    complaint = trusted_by_git(where.root, timeout)
    if complaint:
        out.append(
            Finding(
                "FAIL",
                f"git refuses the clone for this user ({complaint}) — fix: "
                f"git config --global --add safe.directory {where.root}",
            )
        )
    if not _in_group(gid) and os.geteuid() != 0:
        out.append(Finding("note", f"you are not in group {name}: you can read, not act"))
    return out


# --- setting it up ------------------------------------------------------------------------


def _fix_tree(top: Path, gid: int, *, writable: bool) -> int:
    """Give ``top`` to the group: group-owned, setgid group-writable folders, files the group
    reads (``writable``: and writes). Returns how many entries changed."""
    changed = 0
    for path, st in _walk(top):
        if stat.S_ISLNK(st.st_mode):
            continue
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            want = mode | 0o070 | stat.S_ISGID
        elif writable:
            want = mode | 0o060
        else:  # git's objects stay read-only; what their owner may write the group may too
            want = mode | 0o040 | (0o020 if mode & 0o200 else 0)
        if st.st_gid != gid:
            os.chown(path, -1, gid, follow_symlinks=False)
            changed += 1
            st = path.lstat()  # chown clears setgid on some systems
            mode = stat.S_IMODE(st.st_mode)
        if mode != want:
            os.chmod(path, want)
            changed += 1
    return changed


def _members(gid: int) -> list[pwd.struct_passwd]:
    """The users of group ``gid``: listed in it, or with it as their primary group."""
    names = set(grp.getgrgid(gid).gr_mem)
    return sorted(
        (p for p in pwd.getpwall() if p.pw_name in names or p.pw_gid == gid),
        key=lambda p: p.pw_name,
    )


def _git_as(user: pwd.struct_passwd, *args: str) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` as ``user``, with their own HOME (so ``--global`` is their ~/.gitconfig)."""
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), "runuser"
    )
    argv = [runuser, "-u", user.pw_name, "--", "env", f"HOME={user.pw_dir}", "git", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False)


def _trust(root: Path, gid: int) -> list[str]:
    """Add ``root`` to git's safe.directory of every group member (as root), or of this user.
    The console runs git without the system config, so each user's own config says it."""
    line = f"git config --global --add safe.directory {root}"
    if os.geteuid() != 0:
        have = _git(["config", "--global", "--get-all", "safe.directory"]).stdout.split("\n")
        if str(root) in have or "*" in have:
            return []
        _git(["config", "--global", "--add", "safe.directory", str(root)])
        return [f"git trusts {root} for you: {line} (each other user runs the same)"]
    added = []
    for user in _members(gid):
        listed = _git_as(user, "config", "--global", "--get-all", "safe.directory").stdout
        if str(root) in listed.split("\n") or "*" in listed.split("\n"):
            continue
        done = _git_as(user, "config", "--global", "--add", "safe.directory", str(root))
        if done.returncode != 0:
            raise SharedError(f"{line} as {user.pw_name}: {done.stderr.strip()}")
        added.append(user.pw_name)
    if not added:
        return []
    return [f"git trusts {root} for {', '.join(added)}: {line}, as each of them"]


class SharedError(Exception):
    """The group workspace could not be set up; the message says what and how."""


def init_shared(config: ConsoleConfig, group: str, store: AuditStore | None = None) -> list[str]:
    """Make the workspace a group workspace of ``group`` (idempotent); what changed, in words."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise SharedError(f"no group named {group!r} (create it: groupadd {group})") from None
    where = layout(config, store)
    if where.git_dir is None:
        raise SharedError(f"{where.root} is not a git clone (no .git): nothing to share")
    done: list[str] = []
    if not is_group_shared(shared_setting(where.git_dir)):
        _git(["config", "--file", str(where.git_dir / "config"), "core.sharedRepository", "group"])
        done.append("git keeps new files group-writable: core.sharedRepository=group")
    if not where.state_dir.exists():
        where.state_dir.mkdir(parents=True)
        done.append(f"made the state folder {where.state_dir}")
    for top, writable in ((where.git_dir, False), (where.state_dir, True)):
        n = _fix_tree(top, gid, writable=writable)
        if n:
            done.append(
                f"gave {top} to group {group} ({n} changes): setgid folders, group-writable"
            )
    audit = where.audit_file
    if audit is not None and audit.parent != where.state_dir and audit.parent.exists():
        n = _fix_tree(audit.parent, gid, writable=True)
        if n:
            done.append(
                f"gave the audit log's folder {audit.parent} to group {group} ({n} changes)"
            )
    done += _trust(where.root, gid)
    return done
