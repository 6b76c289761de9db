"""Hostile text for the tests: every control character (C0, DEL, C1) and direction override,
written into git objects byte for byte (``git hash-object --literally``, as a crafted push
would bring them), and checks that none of them reaches the console's objects or its output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

CONTROLS: tuple[str, ...] = (
    *(chr(c) for c in range(0x20)),  # C0, NUL to US, with \t and \n
    "\x7f",  # DEL
    *(chr(c) for c in range(0x80, 0xA0)),  # C1, CSI (U+009B) and OSC (U+009D) among them
    *BIDI,  # direction overrides and isolates
)
"""74 characters no backend may hand the console."""
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes the clipboard of the terminal it reaches
CLEAR = "\x1b[2J\x1b[H"  # clears the screen
_BAD = frozenset(CONTROLS)


def name(char: str) -> str:
    return f"U+{ord(char):04X}"


def bad_chars(text: str, *, multiline: bool = False) -> list[str]:
    """The control characters in ``text`` (``\\n`` allowed when ``multiline``)."""
    return [name(c) for c in text if c in _BAD and not (multiline and c == "\n")]


def leaks(value: Any, where: str = "", *, multiline: Sequence[str] = ("message",)) -> list[str]:
    """Every string inside ``value`` (a domain object, a dict, a list) that holds a control
    character, as ``path: U+XXXX``; ``\\n`` is allowed in the fields named ``multiline``."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, str):
        field = where.rsplit(".", 1)[-1]
        found = bad_chars(value, multiline=field in multiline)
        return [f"{where}: {', '.join(found)}"] if found else []
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            out += leaks(str(k), f"{where}.<key>") + leaks(v, f"{where}.{k}", multiline=multiline)
    elif isinstance(value, list | tuple | set):
        for i, v in enumerate(value):
            out += leaks(v, f"{where}[{i}]", multiline=multiline)
    return out


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}  # fmt: skip
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, env=env, check=True
    )
    return done.stdout.decode().strip()


def write_objects(repo: Path, kind: str, bodies: Sequence[bytes]) -> list[str]:
    """Write raw objects of ``kind`` exactly as given (no fsck); returns their ids."""
    folder = repo / ".git" / "hostile-objects"
    folder.mkdir(exist_ok=True)
    paths = []
    for i, body in enumerate(bodies):
        path = folder / f"{kind}-{i}"
        path.write_bytes(body)
        paths.append(str(path))
    out = git(repo, "hash-object", "-t", kind, "-w", "--literally", *paths)
    return out.split()


def set_refs(repo: Path, refs: Mapping[str, str]) -> None:
    script = "".join(f"update {ref} {sha}\n" for ref, sha in refs.items())
    git(repo, "update-ref", "--stdin", input=script.encode())


def commit_body(tree: str, parent: str | None, *, author: str, email: str, message: str,
                at: int) -> bytes:  # fmt: skip
    head = f"tree {tree}\n" + (f"parent {parent}\n" if parent else "")
    head += f"author {author} <{email}> {at} +0000\ncommitter Ci <ci@example.com> {at} +0000\n"
    return (head + "\n" + message).encode()


def tag_body(commit: str, tag: str, *, tagger: str, email: str, message: str, at: int) -> bytes:
    text = (
        f"object {commit}\ntype commit\ntag {tag}\ntagger {tagger} <{email}> {at} +0000\n\n"
        f"{message}\n"
    )
    return text.encode()


def hostile_commits(
    repo: Path,
    base: str,
    chars: Sequence[str],
    *,
    field: str = "all",
    at: int = 1_763_100_000,
    root: bool = False,
) -> list[str]:
    """One commit on ``base``'s tree per char, with the char in ``field`` (author, email,
    subject, body, or all of them); a child of ``base``, or with ``root`` a root commit."""
    tree = git(repo, "rev-parse", f"{base}^{{tree}}")
    bodies = []
    for i, c in enumerate(chars):

        def put(part: str, text: str, c: str = c) -> str:
            return text.replace("|", c if field in (part, "all") else "")

        message = f"{put('subject', 'subject | end')}\n\n{put('body', 'body | end')}\n"
        bodies.append(commit_body(
            tree, None if root else base, author=put("author", "Eve|Mallory"),
            email=put("email", "eve|mallory@example.com"), message=message, at=at + i,
        ))  # fmt: skip
    return write_objects(repo, "commit", bodies)


def hostile_tags(
    repo: Path,
    commits: Sequence[str],
    chars: Sequence[str],
    *,
    names: Sequence[str],
    field: str = "all",
    at: int = 1_763_100_000,
) -> dict[str, str]:
    """An annotated tag ``names[i]`` on ``commits[i]`` with ``chars[i]`` in ``field`` (tagger,
    email, message, or all of them); returns {tag name: char}."""
    bodies = []
    for i, (commit, c, tag) in enumerate(zip(commits, chars, names, strict=True)):

        def put(part: str, text: str, c: str = c) -> str:
            return text.replace("|", c if field in (part, "all") else "")

        bodies.append(tag_body(
            commit, tag, tagger=put("tagger", "Tag|Ger"), email=put("email", "tag|ger@example.com"),
            message=put("message", f"register {OSC52 if field == 'all' else ''}| end\nline 2"),
            at=at + i,
        ))  # fmt: skip
    ids = write_objects(repo, "tag", bodies)
    set_refs(repo, {f"refs/tags/{n}": sha for n, sha in zip(names, ids, strict=True)})
    return dict(zip(names, chars, strict=True))


def terminal_unsafe(output: str) -> list[str]:
    """What in CLI output could drive a terminal: any C0 control but \\n (and \\t), DEL, C1,
    and direction overrides."""
    return sorted({name(c) for c in output if c in _BAD and c not in "\n\t"})


def chunks(seq: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
