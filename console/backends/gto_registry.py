"""The embedded model registry: GTO's conventions in git tags, read and written with git.

Reads every tag with one ``git for-each-ref`` into a snapshot, refreshed only when the refs
changed on disk. Writes annotated tags atomically, so two writers racing for the same stage can
not both win: with a remote (``origin`` unless ``push_remote`` says otherwise), the remote is
the shared truth: decisions fetch first (``sync``) and a write is one ``git push --atomic`` of
the tag with a compare-and-set of the stage's guard ref, so the remote picks the one winner;
without one, ``git update-ref`` does the same in the local repository. See docs/registry-gto.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.backends.gto_snapshot import (
    Snapshot,
    parse_artifacts_yaml,
    read_snapshot,
)
from console.domain import Model, ModelVersion, RegistryEntry, RegistryEvent, StageAssignment
from console.git.cmd import CatFile, run_git
from console.git.gto_stages import allowed_stages
from console.git.gto_tags import (
    Action,
    ArtifactState,
    StageState,
    TagEvent,
    format_tag,
    is_valid_artifact,
    is_valid_name,
    is_valid_version,
)
from console.plugins import BackendContext
from console.plugins.options import GtoConfig
from console.ports import (
    BackendError,
    Conflict,
    Deprecated,
    InvalidResponse,
    NotFound,
    Unreachable,
)

log = logging.getLogger(__name__)
ZERO = "0" * 40
GUARD_PREFIX = "refs/cd4ml-console/stage-guards/"
PUSH_TIMEOUT = 60.0


class GtoRegistry:
    """ModelRegistry over GTO tags in a local git repository."""

    name = "gto"
    checks_commit = True  # assign(commit=) refuses a version re-registered on another commit
    history_complete = True  # every write is a tag: a write missing from history did not happen

    def __init__(self, config: GtoConfig, ctx: BackendContext) -> None:
        path = Path(config.path) if config.path else ctx.workspace
        self.path = path if path.is_absolute() else ctx.workspace / path
        self.push_remote: str | bool | None = config.push_remote
        self._remote_name: str | bool | None = False  # False: not resolved yet
        self.timeout = ctx.timeout
        self._git_dir: Path | None = None
        self._snap: Snapshot | None = None
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._catfile: CatFile | None = None
        self._index: tuple[bytes | None, dict[str, dict[str, Any]]] = (None, {})
        self._host = socket.gethostname() or "localhost"

    # -- reading ----------------------------------------------------------------------------

    async def _snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The current snapshot; re-read when the refs on disk changed (or ``fresh``)."""
        asked = time.monotonic()
        async with self._read_lock:
            if self._git_dir is None:
                _, out, _ = await run_git(
                    self.path, "rev-parse", "--git-common-dir", timeout=self.timeout
                )
                git_dir = Path(out.decode().strip())
                self._git_dir = git_dir if git_dir.is_absolute() else self.path / git_dir
            snap = self._snap
            if snap is not None and (
                snap.started_mono >= asked or (not fresh and snap.is_current())
            ):
                return snap
            # A fresh read (before a write) trusts git alone, not the file a start saved.
            self._snap = await read_snapshot(
                self.path, self._git_dir, self.timeout, saved=not fresh
            )
            return self._snap

    async def _artifacts_index(self) -> dict[str, dict[str, Any]]:
        """``artifacts.yaml`` at HEAD: name -> {path, type, description, labels}."""
        if self._catfile is None:
            self._catfile = CatFile(self.path, self.timeout)
        data = await self._catfile.read("HEAD", "artifacts.yaml")
        if data == self._index[0]:
            return self._index[1]
        try:
            parsed = parse_artifacts_yaml(data)
        except ValueError as exc:
            raise InvalidResponse(
                f"artifacts.yaml at HEAD in {self.path} is not valid: {exc}",
                backend=self.name,
                hint="fix the file (gto's format: NAME: {type, path, description, labels})",
            ) from None
        self._index = (data, parsed)
        return parsed

    async def _state(self, model: str) -> tuple[Snapshot, ArtifactState | None]:
        snap = await self._snapshot()
        return snap, await self._state_in(snap, model)

    async def _state_in(self, snap: Snapshot, model: str) -> ArtifactState | None:
        """The model's state in ``snap``; NotFound when no tag and no artifacts.yaml names it."""
        state = snap.state(model)
        if state is None and model not in await self._artifacts_index():
            raise NotFound(
                f"no model {model!r} in the git tags or artifacts.yaml at {self.path}",
                backend=self.name,
                hint=f"register a version: gto register {model} REF --version v0.1.0",
            )
        return state

    async def check(self) -> str:
        snap = await self._snapshot()
        states = [snap.state(name) for name in snap.artifacts()]
        n_versions = sum(  # as gto counts them: not the deregistered ones
            sum(v.active for v in s.versions.values()) for s in states if s is not None
        )
        return f"{len(states)} models, {n_versions} versions in git tags at {self.path}"

    async def models(self) -> tuple[Model, ...]:
        snap = await self._snapshot()
        index = await self._artifacts_index()
        out = []
        for name in sorted(set(snap.artifacts()) | set(index)):
            meta = index.get(name, {})
            state = snap.state(name)
            labels = meta.get("labels") or ()
            out.append(
                Model(
                    name=name,
                    description=str(meta.get("description") or ""),
                    path=str(meta.get("path") or ""),
                    deprecated=bool(state and state.deprecated),
                    labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
                )
            )
        return tuple(out)

    async def versions(self, model: str) -> tuple[ModelVersion, ...]:
        snap, state = await self._state(model)
        return _versions(snap, model, state)

    async def stages(self, model: str) -> tuple[StageAssignment, ...]:
        _, state = await self._state(model)
        return _stages(model, state)

    async def snapshot(self, models: Sequence[str]) -> dict[str, RegistryEntry | BackendError]:
        """versions() and stages() of many models, from one read of the tags."""
        snap = await self._snapshot()
        out: dict[str, RegistryEntry | BackendError] = {}
        for model in dict.fromkeys(models):
            try:
                state = await self._state_in(snap, model)
            except BackendError as exc:
                out[model] = exc
                continue
            out[model] = RegistryEntry(
                versions=_versions(snap, model, state), stages=_stages(model, state)
            )
        return out

    async def history(self, model: str) -> tuple[RegistryEvent, ...]:
        snap, state = await self._state(model)
        return snap.history(model) if state else ()

    # -- writing ----------------------------------------------------------------------------

    async def assign(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        actor: str,
        message: str = "",
        expected: str | None = None,
        actor_email: str | None = None,
        commit: str | None = None,
    ) -> StageAssignment:
        """Point ``stage`` at ``version`` with a new ``MODEL#STAGE#N`` tag, if it still shows
        ``expected`` (and, given ``commit``, the version is still registered there); Conflict
        otherwise (also when another writer wins the race)."""
        text = message or f"Assigning stage {stage} to artifact {model} version {version}"
        return await self._move(model, stage, version, expected, actor, actor_email, text, commit)

    async def unassign(
        self,
        model: str,
        stage: str,
        *,
        actor: str,
        expected: str | None,
        message: str = "",
        actor_email: str | None = None,
    ) -> StageAssignment:
        """Take ``expected`` out of ``stage`` with a ``MODEL#STAGE!#N`` tag (compare-and-set).

        GTO semantics: the stage then points at the previous version still assigned to it, if
        any; the returned assignment says where it points now.
        """
        text = message or f"Unassigning stage '{stage}' to artifact '{model}' version '{expected}'"
        await self._move(model, stage, None, expected, actor, actor_email, text)
        after = (await self._snapshot(fresh=True)).state(model)
        now = after.stages.get(stage) if after else None
        return (
            _assignment(model, now)
            if now
            else StageAssignment(model=model, stage=stage, version=None)
        )

    async def _move(
        self,
        model: str,
        stage: str,
        version: str | None,
        expected: str | None,
        actor: str,
        actor_email: str | None,
        message: str,
        commit: str | None = None,
    ) -> StageAssignment:
        """Assign (``version``) or unassign (None) ``stage`` if it still points at ``expected``."""
        self._check_stage(stage)
        async with self._write_lock:
            guard = await self._guard(model, stage)
            snap = await self._snapshot(fresh=True)
            state = snap.state(model)
            target = version if version is not None else expected
            found = state.versions.get(target) if state and target else None
            if version is not None and (found is None or not found.registered or not found.active):
                gone = found is not None and found.registered
                where = (
                    "was deregistered" if gone else f"is not registered in git tags at {self.path}"
                )
                raise NotFound(
                    f"{model} {version} {where}",
                    backend=self.name,
                    hint=f"register it: gto register {model} COMMIT --version {version}",
                )
            if commit and found is not None and found.commit != commit:
                raise Conflict(
                    f"{model} {version} is now registered at commit {found.commit[:12]}, not "
                    f"{commit[:12]}: it was re-registered since the request",
                    backend=self.name,
                    expected=commit,
                    actual=found.commit,
                    changed_by=found.registration.tagger if found.registration else "",
                )
            current = self._compare(model, stage, state, expected)
            if current is not None and version is not None and current.version == version:
                return _assignment(model, current)
            if state is None or found is None:  # unassigning an empty stage: nothing to do
                return StageAssignment(model=model, stage=stage, version=None)
            action = Action.ASSIGN if version is not None else Action.UNASSIGN
            name = format_tag(model, action, stage=stage, counter=snap.counter(model) + 1)
            at = await self._create_tag(
                name, found.commit, actor, actor_email, message, state.newest(stage=stage), guard
            )
        return StageAssignment(
            model=model,
            stage=stage,
            version=version,
            assigned_by=_tagger(actor),
            assigned_at=at,
            ref=name,
        )

    async def register(
        self,
        model: str,
        version: str,
        commit: str,
        *,
        actor: str,
        message: str = "",
        actor_email: str | None = None,
    ) -> ModelVersion:
        """Register ``version`` of ``model`` at ``commit`` (annotated ``MODEL@VERSION`` tag)."""
        if not is_valid_artifact(model):
            raise NotFound(f"{model!r} is not a valid GTO artifact name", backend=self.name)
        if not is_valid_version(version):
            raise NotFound(f"{version!r} is not a GTO version like v1.2.0", backend=self.name)
        rc, out, _ = await run_git(
            self.path,
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{commit}^{{commit}}",
            timeout=self.timeout,
            check=False,
        )
        if rc != 0:
            raise NotFound(f"no commit {commit!r} in {self.path}", backend=self.name)
        sha = out.decode().strip()
        async with self._write_lock:
            snap = await self._snapshot(fresh=True)
            state = snap.state(model)
            if state is not None:
                found = state.versions.get(version)
                if found is not None and found.registered and found.active:
                    raise Conflict(
                        f"{model} {version} is already registered (at {found.commit[:8]})",
                        backend=self.name,
                        actual=version,
                        changed_by=found.registration.tagger if found.registration else "",
                    )
                for other in state.versions.values():
                    if other.commit == sha and other.registered and other.active:
                        raise Conflict(
                            f"commit {sha[:8]} already carries {model} {other.version}",
                            backend=self.name,
                            actual=other.version,
                        )
            name = format_tag(model, Action.REGISTER, version=version)
            if snap.has_tag(name):  # re-registering a deregistered version needs a counter
                name = format_tag(
                    model, Action.REGISTER, version=version, counter=snap.counter(model) + 1
                )
            text = message or f"Registering artifact {model} version {version}"
            newest = state.newest(version=version) if state else 0
            at = await self._create_tag(name, sha, actor, actor_email, text, newest, None)
        return ModelVersion(
            model=model,
            version=version,
            commit=sha,
            created_by=_tagger(actor),
            created_at=at,
            tags={"gto.tag": name},
        )

    async def check_move(self, model: str, stage: str) -> None:
        """What a stage move would be refused for, asked before anything is recorded: a stage
        ``.gto`` does not allow (NotFound), a deprecated artifact (Deprecated: a new stage tag
        would revive it in gto's eyes without anyone deciding so)."""
        self._check_stage(stage)
        _, state = await self._state(model)
        if state is not None and state.deprecated:
            try:
                remote = await self.remote()
            except Unreachable:  # a push_remote that is not a remote: the move says so itself
                remote = None
            raise _deprecated(model, state.events[-1], remote)

    def _check_stage(self, stage: str) -> None:
        if not is_valid_name(stage):
            raise NotFound(f"{stage!r} is not a valid GTO stage name", backend=self.name)
        allowed = allowed_stages(self.path)
        if allowed is not None and stage not in allowed:
            raise NotFound(
                f"stage {stage!r} is not allowed by {self.path / '.gto'}",
                backend=self.name,
                hint=f"use one of: {', '.join(allowed)}",
            )

    def _compare(
        self, model: str, stage: str, state: ArtifactState | None, expected: str | None
    ) -> StageState | None:
        """The stage's current state, or Conflict when it is not ``expected``."""
        current = state.stages.get(stage) if state else None
        actual = current.version if current else None
        if actual == expected:
            return current
        if current is None:
            raise Conflict(
                f"stage {stage} of {model} has never been assigned, not {expected} as expected",
                backend=self.name,
                expected=expected,
                actual=None,
            )
        ev = current.event
        raise Conflict(
            f"stage {stage} of {model} now points at {actual or 'nothing'}, not "
            f"{expected or 'nothing'}: moved by {ev.tagger or 'unknown'} at "
            f"{ev.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (tag {ev.name})",
            backend=self.name,
            hint="reload the model and review the change before trying again",
            expected=expected,
            actual=actual,
            changed_by=ev.tagger,
        )

    async def _guard(self, model: str, stage: str) -> tuple[str, str, str, str]:
        """(guard ref, its value, model, stage); the value is read *before* the snapshot."""
        digest = hashlib.sha1(f"{model}\0{stage}".encode()).hexdigest()[:24]
        ref = GUARD_PREFIX + digest
        rc, out, _ = await run_git(
            self.path, "rev-parse", "--verify", "--quiet", ref, timeout=self.timeout, check=False
        )
        return ref, (out.decode().strip() if rc == 0 else ZERO), model, stage

    async def _create_tag(
        self,
        name: str,
        commit: str,
        actor: str,
        actor_email: str | None,
        message: str,
        newest: int,
        guard: tuple[str, str, str, str] | None,
    ) -> datetime:
        """Create annotated tag ``name`` -> ``commit`` in one atomic ref transaction.

        The tagger time is kept after ``newest`` (the latest tag of the same stage or version)
        so gto orders it last even within one second or under clock skew.
        """
        stamp = max(int(time.time()), newest + 1)
        email = re.sub(r"[<>\s]", "", actor_email or "") or f"{_slug(actor)}@{self._host}"
        body = (
            f"object {commit}\ntype commit\ntag {name}\n"
            f"tagger {_tagger(actor)} <{email}> {stamp} +0000\n\n{message.strip()}\n"
        )
        _, out, _ = await run_git(self.path, "mktag", input=body.encode(), timeout=self.timeout)
        obj = out.decode().strip()
        remote = await self.remote()
        if remote is not None:
            await self._publish(remote, name, obj, guard)
        else:
            await self._update_refs(name, obj, guard, compare=True)
        return datetime.fromtimestamp(stamp, tz=UTC)

    async def _update_refs(
        self, name: str, obj: str, guard: tuple[str, str, str, str] | None, *, compare: bool
    ) -> None:
        """Create the tag (and move the guard) in one local ref transaction; with ``compare``
        it fails when either was changed by another writer (compare-and-set)."""
        old = f" {ZERO}" if compare else ""
        lines = [f"update refs/tags/{name} {obj}{old}"]
        if guard is not None:
            lines.append(f"update {guard[0]} {obj}" + (f" {guard[1]}" if compare else ""))
        rc, _, err = await run_git(
            self.path,
            "update-ref",
            "--stdin",
            input=("\n".join(lines) + "\n").encode(),
            timeout=self.timeout,
            check=False,
        )
        if rc == 0:
            return
        reason = err.decode(errors="replace").strip()
        if not lost_race(reason):
            raise Unreachable(
                f"nothing was changed: git could not create tag {name} in {self.path}: "
                f"{reason.splitlines()[-1] if reason else f'exit code {rc}'}",
                backend=self.name,
                hint=permission_hint(reason, self.path),
            )
        raise await self._lost(name, guard, "at the same moment")

    async def _beaten(self, name: str, guard: tuple[str, str, str, str] | None) -> bool:
        """After a refused push: whether the remote now shows another writer's move (the
        stage's guard moved, or the tag name was taken); else the refusal was something else
        (a hook, permissions) and is reported as such."""
        await self.sync()
        if guard is not None:
            _, moved, _, _ = await self._guard(guard[2], guard[3])
            if moved != guard[1]:
                return True
        return (await self._snapshot()).has_tag(name)

    async def _lost(
        self, name: str, guard: tuple[str, str, str, str] | None, when: str
    ) -> Conflict:
        """The Conflict for a write another writer beat, naming who moved the stage."""
        latest = await self._snapshot(fresh=True)
        winner = latest.event(name)
        if guard is not None:  # a stage write: who moved the stage?
            state = latest.state(guard[2])
            current = state.stages.get(guard[3]) if state else None
            winner = current.event if current else winner
        who = f" by {winner.tagger} (tag {winner.name})" if winner else ""
        return Conflict(
            f"another writer changed the registry {when}{who}; tag {name} was not created",
            backend=self.name,
            hint="reload the model and review the change before trying again",
            changed_by=winner.tagger if winner else "",
        )

    # -- the remote: the shared truth -----------------------------------------------------------

    async def remote(self) -> str | None:
        """The remote that holds the registry's truth: ``push_remote``, else ``origin`` when
        the repository has it; None with ``push_remote = false`` or no remote at all."""
        if self._remote_name is not False:
            return self._remote_name if isinstance(self._remote_name, str) else None
        setting = self.push_remote
        name: str | None = None
        if setting is not False:
            wanted = setting if isinstance(setting, str) else "origin"
            rc, _, _ = await run_git(
                self.path,
                "config",
                "--get",
                f"remote.{wanted}.url",
                timeout=self.timeout,
                check=False,
            )
            if rc == 0:
                name = wanted
            elif isinstance(setting, str) or setting is True:
                raise Unreachable(
                    f"push_remote names {wanted!r}, which is not a remote of {self.path}",
                    backend=self.name,
                    hint=f"git -C {self.path} remote add {wanted} URL, or set push_remote",
                )
        self._remote_name = name
        return name

    async def sync(self) -> None:
        """Fetch the registry's tags (and the stage guards) from the remote before a
        decision; Unreachable when that fails (a decision must not rest on a stale clone)."""
        remote = await self.remote()
        if remote is None:
            return
        rc, _, err = await run_git(
            self.path,
            "fetch",
            "--quiet",
            "--no-tags",
            remote,
            "+refs/tags/*:refs/tags/*",
            f"+{GUARD_PREFIX}*:{GUARD_PREFIX}*",
            timeout=max(self.timeout, PUSH_TIMEOUT),
            check=False,
        )
        if rc != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise Unreachable(
                f"fetching the registry's tags from {remote} failed: "
                f"{lines[-1] if lines else f'exit code {rc}'}",
                backend=self.name,
                hint=f"check the remote: git -C {self.path} fetch {remote}",
            )
        self._snap = None  # read what the fetch brought

    async def unpublished(self, ref: str) -> str:
        """A note for a tag written only to this clone although it has a remote (with
        ``push_remote = false``), with the command that publishes it; "" otherwise."""
        if self.push_remote is not False:
            return ""
        _, out, _ = await run_git(self.path, "remote", timeout=self.timeout, check=False)
        remotes = out.decode().split()
        if not remotes:
            return ""
        where = "origin" if "origin" in remotes else remotes[0]
        return (
            f"tag {ref} is only in this clone (push_remote = false): publish it with "
            f"git -C {self.path} push {where} refs/tags/{ref}"
        )

    async def fetched_at(self) -> datetime | None:
        """When the registry was last fetched from its remote (FETCH_HEAD), None if never."""
        if await self.remote() is None:
            return None
        await self._snapshot()  # resolves the git dir
        assert self._git_dir is not None
        try:
            return datetime.fromtimestamp((self._git_dir / "FETCH_HEAD").stat().st_mtime, UTC)
        except OSError:
            return None

    async def _publish(
        self, remote: str, name: str, obj: str, guard: tuple[str, str, str, str] | None
    ) -> None:
        """One atomic push of the new tag with a compare-and-set of the stage's guard on the
        remote: the remote decides who wins. Only then are the local refs created."""
        args = ["push", "--atomic", "--porcelain", "--quiet"]
        refspecs = [f"{obj}:refs/tags/{name}"]
        if guard is not None:
            expect = "" if guard[1] == ZERO else guard[1]
            args.append(f"--force-with-lease={guard[0]}:{expect}")
            refspecs.append(f"{obj}:{guard[0]}")
        rc, out, err = await run_git(
            self.path,
            *args,
            remote,
            *refspecs,
            timeout=max(self.timeout, PUSH_TIMEOUT),
            check=False,
        )
        said = (out + err).decode(errors="replace")
        if rc != 0:
            refused = [ln for ln in said.splitlines() if ln.startswith("!")]
            if refused and all(lost_race(ln) for ln in refused) and await self._beaten(name, guard):
                raise await self._lost(name, guard, f"on {remote} first")
            lines = refused or [ln for ln in said.strip().splitlines() if ln.strip()]
            raise Unreachable(
                f"nothing was changed: pushing tag {name} to {remote} failed: "
                f"{lines[-1] if lines else f'exit code {rc}'}",
                backend=self.name,
                hint=f"check the remote (git -C {self.path} push {remote}), then try again",
            )
        try:  # the remote has it: the local clone follows (else the next fetch brings it)
            await self._update_refs(name, obj, guard, compare=False)
        except (Unreachable, Conflict) as exc:
            log.warning("tag %s is on %s but not yet in %s: %s", name, remote, self.path, exc)

    async def aclose(self) -> None:
        if self._catfile is not None:
            await self._catfile.aclose()
            self._catfile = None


def _deprecated(model: str, ev: TagEvent, remote: str | None) -> Deprecated:
    """The refusal for a deprecated artifact, with the two ways gto users revive one (with a
    remote, the deprecation goes there too: the next fetch would bring it back)."""
    delete = f"git tag -d '{ev.name}'"
    if remote is not None:
        delete += f" && git push {remote} ':refs/tags/{ev.name}'"
    return Deprecated(
        f"{model} is deprecated (tag {ev.name} by {ev.tagger or 'unknown'} at "
        f"{ev.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC); `gto show` hides it, and no stage of it "
        "moves until it is revived",
        backend="gto",
        hint=f"revive it on purpose: remove the deprecation ({delete}) or register a new "
        f"version (gto register {model} REF{' --push' if remote else ''})",
    )


def lost_race(reason: str) -> bool:
    """Whether git's refusal to update a ref means another writer got there first (a lost
    compare-and-set, or its lock held right now), as opposed to a permission or disk error."""
    text = reason.lower()
    if any(w in text for w in ("permission denied", "read-only file system", "no space left")):
        return False
    return any(
        w in text
        for w in (
            "already exists",
            "but expected",
            "file exists",
            "stale info",
            "atomic push failed",
            "atomic transaction failed",
            "failed to lock",
            "cannot lock ref",
        )
    )


def permission_hint(reason: str, path: Path) -> str:
    text = reason.lower()
    if "permission denied" in text or "read-only file system" in text:
        return (
            f"this user can not write the git refs of {path}; a workspace shared by a group "
            "needs group-writable refs (`cd4ml-console init --shared GROUP`, docs/team.md)"
        )
    if "no space left" in text:
        return f"free space on the disk holding {path}"
    return f"check the repository: git -C {path} fsck"


def _slug(actor: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", ".", actor).strip(".") or "console"


def _tagger(actor: str) -> str:
    return re.sub(r"[<>\n]", "", actor).strip() or "cd4ml-console"


def _versions(snap: Snapshot, model: str, state: ArtifactState | None) -> tuple[ModelVersion, ...]:
    return snap.model_versions(model) if state else ()


def _stages(model: str, state: ArtifactState | None) -> tuple[StageAssignment, ...]:
    if state is None:
        return ()
    return tuple(_assignment(model, s) for s in state.stages.values())


def _assignment(model: str, state: StageState) -> StageAssignment:
    ev = state.event
    return StageAssignment(
        model=model,
        stage=state.stage,
        version=state.version,
        assigned_by=ev.tagger,
        assigned_at=ev.at,
        ref=ev.name,
    )


__all__ = ["GUARD_PREFIX", "GtoRegistry"]
