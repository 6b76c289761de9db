"""Fixtures for backend tests: throwaway git repositories with deterministic identities/dates.

``git_repo(name)`` makes a repo under tmp_path; commits and tags get fixed authors and a clock
that advances one minute per object, so hashes are the same on every run. The global and
system git config are never read.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from console.plugins import BackendContext

EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which git ignores the user's config and never prompts."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in ("GIT_EXEC_PATH",)
    }
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Alice",
        GIT_AUTHOR_EMAIL="alice@example.com",
        GIT_COMMITTER_NAME="Alice",
        GIT_COMMITTER_EMAIL="alice@example.com",
        LC_ALL="C",
    )
    if extra:
        env.update(extra)
    return env


@dataclass
class TagSpec:
    """One annotated tag for :meth:`GitRepo.tags`."""

    name: str
    commit: str
    tagger: str = "Alice"
    email: str = ""
    at: int | None = None
    message: str = ""


@dataclass
class GitRepo:
    """A git repository for tests, with a deterministic clock (``at``: unix seconds)."""

    path: Path
    clock: int = EPOCH
    env: dict[str, str] = field(default_factory=git_env)

    def tick(self, at: int | None = None) -> int:
        self.clock = at if at is not None else self.clock + 60
        return self.clock

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        """Run git in the repo and return stdout (stripped); fails the test on error."""
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode().strip()

    def commit(
        self,
        message: str = "change",
        files: dict[str, str | bytes] | None = None,
        *,
        author: str = "Alice",
        email: str = "",
        at: int | None = None,
    ) -> str:
        """Write ``files`` (default: bump a counter file), commit them, return the sha."""
        if files is None:
            files = {"counter.txt": f"{self.clock}\n"}
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)
            self.git("add", "--", rel)
        stamp = f"{self.tick(at)} +0000"
        ident = {
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": email or f"{author.lower()}@example.com",
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_DATE": stamp,
        }
        self.git("commit", "-q", "--allow-empty", "-m", message, env=ident)
        return self.head

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tag(
        self,
        name: str,
        rev: str = "HEAD",
        *,
        tagger: str = "Alice",
        email: str = "",
        at: int | None = None,
        message: str = "",
    ) -> str:
        """Create an annotated tag with a fixed tagger and date; returns the tag object sha."""
        ident = {
            "GIT_COMMITTER_NAME": tagger,
            "GIT_COMMITTER_EMAIL": email or f"{tagger.lower()}@example.com",
            "GIT_COMMITTER_DATE": f"{self.tick(at)} +0000",
        }
        self.git("tag", "-a", name, rev, "-m", message or name, env=ident)
        return self.git("rev-parse", f"refs/tags/{name}")

    def lightweight_tag(self, name: str, rev: str = "HEAD") -> None:
        self.git("tag", name, rev)

    def tags(self, specs: Iterable[TagSpec | Mapping[str, Any]]) -> int:
        """Create many annotated tags at once; returns how many.

        Each spec is a TagSpec or a dict of its fields. The tag objects go into one pack
        (``git index-pack --stdin``) and the refs into ``packed-refs``: creating thousands of
        loose files is slow on some file systems, and this is two files whatever the count.
        """
        objects: list[tuple[str, str, bytes]] = []  # (ref name, peeled commit, tag object)
        for item in specs:
            spec = item if isinstance(item, TagSpec) else TagSpec(**item)
            at = spec.at if spec.at is not None else self.tick()
            email = spec.email or f"{spec.tagger.lower()}@example.com"
            body = (
                f"object {spec.commit}\ntype commit\ntag {spec.name}\n"
                f"tagger {spec.tagger} <{email}> {at} +0000\n\n{spec.message or spec.name}\n"
            ).encode()
            objects.append((f"refs/tags/{spec.name}", spec.commit, body))
        self.git("index-pack", "--stdin", input=_pack(body for _, _, body in objects))
        refs: dict[str, tuple[str, str | None]] = {}
        packed = Path(self.git("rev-parse", "--git-common-dir"))
        packed = (packed if packed.is_absolute() else self.path / packed) / "packed-refs"
        if packed.exists():
            refs.update(_read_packed_refs(packed.read_text()))
        for ref, commit, body in objects:
            refs[ref] = (hashlib.sha1(b"tag %d\0" % len(body) + body).hexdigest(), commit)
        lines = ["# pack-refs with: peeled fully-peeled sorted "]
        for ref in sorted(refs, key=lambda r: r.encode()):
            sha, peeled = refs[ref]
            lines.append(f"{sha} {ref}")
            if peeled:
                lines.append(f"^{peeled}")
        packed.write_text("\n".join(lines) + "\n")
        return len(objects)


def _pack(bodies: Iterable[bytes]) -> bytes:
    """A version-2 pack of tag objects (type 4), undeltified."""
    entries = []
    for body in bodies:
        size = len(body)
        header = bytearray([(4 << 4) | (size & 0x0F)])
        size >>= 4
        while size:
            header[-1] |= 0x80
            header.append(size & 0x7F)
            size >>= 7
        entries.append(bytes(header) + zlib.compress(body, 1))
    data = b"PACK" + struct.pack(">II", 2, len(entries)) + b"".join(entries)
    return data + hashlib.sha1(data).digest()


def _read_packed_refs(text: str) -> dict[str, tuple[str, str | None]]:
    refs: dict[str, tuple[str, str | None]] = {}
    last = ""
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("^"):
            refs[last] = (refs[last][0], line[1:])
            continue
        sha, last = line.split(" ", 1)
        refs[last] = (sha, None)
    return refs


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    """Factory: ``git_repo("name", bare=False)`` -> a new empty repo on branch main."""

    def make(name: str = "repo", *, bare: bool = False) -> GitRepo:
        path = tmp_path / name
        path.mkdir(parents=True)
        repo = GitRepo(path)
        repo.git("init", "-q", "-b", "main", *(["--bare"] if bare else []))
        return repo

    return make


@pytest.fixture
def backend_ctx(tmp_path: Path) -> Callable[..., BackendContext]:
    """Factory: ``backend_ctx(workspace)`` -> a BackendContext for embedded backends."""

    def make(workspace: Path, *, timeout: float = 10.0) -> BackendContext:
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        return BackendContext(workspace=workspace, state_dir=state, config=None, timeout=timeout)

    return make


@pytest.fixture(scope="session")
def _gto_world_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Any]:
    return {}


@pytest.fixture
def gto_world(
    _gto_world_templates: dict[bool, Any], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Callable[..., Any]:
    """Factory: ``gto_world(dot_gto=True)`` -> a fresh copy of the repository the ``gto`` CLI
    built (tests/backends/_gto_world.py); built once per session and variant, then copied."""
    import shutil

    from _gto_world import build_gto_world

    def make(*, dot_gto: bool) -> Any:
        template = _gto_world_templates.get(dot_gto)
        if template is None:
            base = tmp_path_factory.mktemp("gto-world")

            def repo_at(name: str) -> GitRepo:
                path = base / name
                path.mkdir(parents=True)
                repo = GitRepo(path)
                repo.git("init", "-q", "-b", "main")
                return repo

            template = _gto_world_templates[dot_gto] = build_gto_world(repo_at, dot_gto=dot_gto)
        path = tmp_path / f"world-{'gto' if dot_gto else 'tags'}"
        shutil.copytree(template.repo.path, path, symlinks=True)
        repo = GitRepo(path, clock=template.repo.clock)
        return replace(template, repo=repo)

    return make
