"""The embedded ``data`` backend: DVC files, params, metrics, stats and schema files read from
git at a commit through one long-lived ``git cat-file --batch`` (no ``dvc``, no checkout)."""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
import tomllib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from console.backends.gitcmd import CatFile, run_git
from console.backends.plugin import DvcConfig
from console.backends.yamlread import safe_load
from console.domain import DataOutput, DataSchema, DataVersion, SchemaField
from console.plugins import BackendContext
from console.ports import InvalidResponse, NotFound, Unreachable

T = TypeVar("T")
_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_HASH_NAMES = frozenset({"md5", "md5-dos2unix", "etag", "checksum", "version_id"})
_ROW_KEYS = ("rows", "n_rows", "num_rows", "row_count", "nrows")
CACHE_SIZE = 4096
CHECK_MODELS = 100


class LRU(OrderedDict[Any, Any]):
    """A bounded least-recently-used mapping for facts keyed by an immutable commit."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def lookup(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            return default
        self.move_to_end(key)
        return self[key]

    def store(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def numeric_only(flat: dict[str, Any]) -> dict[str, float]:
    """Keep finite numbers (not bools) as floats: NaN must not slip past a metric gate."""
    out: dict[str, float] = {}
    for key, value in flat.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                out[key] = number
    return out


def _bad(commit: str, path: str, what: str) -> InvalidResponse:
    return InvalidResponse(
        f"{path} at commit {commit[:10]} {what}",
        backend="dvc",
        hint=f"fix the file in a new commit; inspect it with `git show {commit[:10]}:{path}`",
    )


def parse_document(raw: bytes, commit: str, path: str) -> Any:
    """Parse a JSON, TOML or YAML file by its extension; InvalidResponse says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(commit, path, f"is not UTF-8 text (byte {exc.start})") from None
    ext = posixpath.splitext(path)[1].lower()
    try:
        if ext == ".json":
            return json.loads(text) if text.strip() else None
        if ext == ".toml":
            return tomllib.loads(text)
        return safe_load(text)
    except json.JSONDecodeError as exc:
        raise _bad(
            commit, path, f"is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise _bad(commit, path, f"is not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _bad(commit, path, f"is not valid YAML: {where}{problem}") from None


def _mapping(doc: Any, commit: str, path: str, what: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise _bad(commit, path, f"should hold a mapping of {what}, found a {type(doc).__name__}")
    return {str(k): v for k, v in doc.items()}


def _output(out: Any, base: str, commit: str, path: str) -> DataOutput:
    if not isinstance(out, dict) or not isinstance(out.get("path"), str):
        raise _bad(commit, path, "has an out without a `path`")
    digest = out.get("md5") or out.get("etag") or out.get("checksum")
    if not digest and out.get("hash") not in _HASH_NAMES:
        digest = out.get("hash")  # some writers put the value itself under `hash`
    size, nfiles = out.get("size"), out.get("nfiles")
    return DataOutput(
        path=posixpath.normpath(posixpath.join(base, out["path"])),
        md5=str(digest or ""),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        nfiles=nfiles if isinstance(nfiles, int) and not isinstance(nfiles, bool) else None,
    )


def parse_outs(doc: Any, model: str, commit: str, path: str) -> list[DataOutput]:
    """Outs of a ``.dvc`` file, or of a ``dvc.lock``'s stages (those naming the model, if any)."""
    base = posixpath.dirname(path)
    body = _mapping(doc, commit, path, "DVC fields")
    if posixpath.basename(path) == "dvc.lock" or path.endswith(".lock"):
        stages = body.get("stages", body if "schema" not in body else {})
        stages = _mapping(stages, commit, path, "stages")
        token = re.compile(rf"(^|[@/:_.-]){re.escape(model.rpartition(':')[2])}($|[@/:_.-])")
        named = {k: v for k, v in stages.items() if token.search(k)}
        outs = [
            o
            for s in (named or stages).values()
            if isinstance(s, dict)
            for o in s.get("outs") or []
        ]
    else:
        outs = body.get("outs") or []
    if not isinstance(outs, list):
        raise _bad(commit, path, "has `outs` that is not a list")
    return [_output(o, base, commit, path) for o in outs]


def parse_rows(doc: Any) -> int | None:
    """Row count from a stats file: the first of rows/n_rows/num_rows/row_count/nrows."""
    if not isinstance(doc, dict):
        return None
    for key in _ROW_KEYS:
        value = doc.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
    return None


def _field(name: str, spec: Any) -> SchemaField:
    if not isinstance(spec, dict):
        return SchemaField(name=name, type="" if spec is None else str(spec))
    types: list[str] = []
    raw = spec.get("type", spec.get("dtype"))
    if isinstance(raw, list):
        types = [str(t) for t in raw]
    elif raw is not None:
        types = [str(raw)]
    for option in spec.get("anyOf") or spec.get("oneOf") or []:
        if isinstance(option, dict) and option.get("type") is not None:
            types.append(str(option["type"]))
    nullable: bool | None = None
    if isinstance(spec.get("nullable"), bool):
        nullable = spec["nullable"]
    elif isinstance((spec.get("constraints") or {}).get("required"), bool):
        nullable = not spec["constraints"]["required"]
    elif types:
        nullable = "null" in types
    kind = "|".join(t for t in types if t != "null")
    if spec.get("format"):
        kind = f"{kind}:{spec['format']}" if kind else str(spec["format"])
    return SchemaField(name=name, type=kind, nullable=nullable)


def parse_schema(doc: Any, commit: str, path: str) -> DataSchema:
    """Fields from a JSON-Schema-like ``properties``, a ``fields`` list or a ``columns`` form."""
    body = _mapping(doc, commit, path, "schema keys")
    for key in ("properties", "fields", "columns"):
        entries = body.get(key)
        if isinstance(entries, dict):
            fields = [_field(str(k), v) for k, v in entries.items()]
            break
        if isinstance(entries, list) and key != "properties":
            if not all(isinstance(item, dict) and "name" in item for item in entries):
                raise _bad(commit, path, f"has a `{key}` entry without a `name`")
            fields = [_field(str(item["name"]), item) for item in entries]
            break
    else:
        raise _bad(commit, path, "has none of `properties`, `fields` or `columns`")
    return DataSchema(commit=commit, path=path, fields=tuple(fields))


class DvcData:
    """DataVersions read from DVC files, params and metrics files in the workspace's git repo."""

    name = "dvc"

    def __init__(self, config: DvcConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.repo = Path(ctx.workspace)
        self._cat = CatFile(self.repo, timeout=ctx.timeout)
        self._shas: LRU = LRU(CACHE_SIZE)  # full sha -> True once verified to be a commit
        self._results: LRU = LRU(CACHE_SIZE)  # (kind, model, sha) -> parsed result
        self._dirs: LRU = LRU(256)  # (sha, artifacts.yaml path) -> {name: folder}
        self._dirs_by_content: LRU = LRU(16)  # (content sha1, prefix) -> {name: folder}

    # -- resolution -----------------------------------------------------------------------

    async def _resolve(self, commit: str) -> str:
        """The full sha of ``commit``. A full sha is trusted until nothing is found at it."""
        key = commit.strip().lower()
        if _HEX.fullmatch(key):
            return key
        rev = commit.strip()
        if not rev or rev.startswith("-"):
            raise NotFound(f"{commit!r} is not a commit", backend="dvc")
        return await self._rev_parse(rev)

    async def _rev_parse(self, rev: str) -> str:
        """One ``git rev-parse`` proving ``rev`` names a commit; NotFound when it does not."""
        code, out, err = await run_git(
            self.repo,
            "rev-parse",
            "--verify",
            "--quiet",
            f"{rev}^{{commit}}",
            timeout=self.ctx.timeout,
            check=False,
        )
        if b"not a git repository" in err:
            raise Unreachable(
                f"{self.repo} is not a git repository",
                backend="dvc",
                hint="check workspace.path in the config",
            )
        if code != 0:
            raise NotFound(
                f"commit {rev} is not in the repository {self.repo}",
                backend="dvc",
                hint="fetch it (git fetch) or check the version's commit",
            )
        sha = out.decode().strip()
        self._shas.store(sha, True)
        return sha

    async def _read(self, sha: str, path: str) -> bytes | None:
        raw = await self._cat.read(sha, path)
        if raw is not None:
            self._shas.store(sha, True)  # a file found there proves the commit exists
        return raw

    async def _cached(
        self, kind: str, model: str, commit: str, load: Callable[[str], Awaitable[T]]
    ) -> T:
        sha = await self._resolve(commit)
        key = (kind, model, sha)
        hit = self._results.lookup(key, _MISS)
        if hit is not _MISS:
            return hit
        value = await load(sha)
        if not self._shas.lookup(sha):
            await self._rev_parse(sha)  # nothing was found: is the commit even there?
        self._results.store(key, value)
        return value

    async def _artifact_dir(self, model: str, sha: str) -> str:
        """Folder of the model's artifact path in ``artifacts.yaml`` (``dir:name`` aware)."""
        prefix, _, name = model.rpartition(":")
        index_path = posixpath.join(prefix, "artifacts.yaml") if prefix else "artifacts.yaml"
        cached = self._dirs.lookup((sha, index_path))
        if cached is None:
            cached = {}
            raw = await self._read(sha, index_path)
            if raw is not None:
                # The file rarely changes between commits: parse each content once.
                digest = (hashlib.sha1(raw).digest(), prefix)
                cached = self._dirs_by_content.lookup(digest)
                if cached is None:
                    cached = {}
                    doc = _mapping(
                        parse_document(raw, sha, index_path), sha, index_path, "artifacts"
                    )
                    for art, spec in doc.items():
                        if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                            cached[art] = posixpath.dirname(posixpath.join(prefix, spec["path"]))
                    self._dirs_by_content.store(digest, cached)
            self._dirs.store((sha, index_path), cached)
        folder: str = cached.get(name, "")
        return "" if folder in (".", "") else posixpath.normpath(folder)

    def _override(self, model: str, attr: str) -> Any:
        models = getattr(self.ctx.config, "models", None) or {}
        cfg = models.get(model)
        return getattr(cfg, attr, None) if cfg is not None else None

    async def _candidates(self, model: str, sha: str, attr: str) -> list[str]:
        override = self._override(model, attr)
        if override:
            templates = [override] if isinstance(override, str) else list(override)
        else:
            templates = list(getattr(self.config, attr))
        folder = (
            await self._artifact_dir(model, sha) if any("{dir}" in t for t in templates) else ""
        )
        out: list[str] = []
        for template in templates:
            if "{dir}" in template and not folder:
                continue
            path = template.replace("{model}", model).replace("{dir}", folder)
            path = posixpath.normpath(path).lstrip("/")
            if path not in out:
                out.append(path)
        return out

    async def _first(self, model: str, sha: str, attr: str) -> tuple[str, Any] | None:
        """Path and parsed content of the first candidate file present at ``sha``."""
        for path in await self._candidates(model, sha, attr):
            raw = await self._read(sha, path)
            if raw is not None:
                return path, parse_document(raw, sha, path)
        return None

    # -- the port -------------------------------------------------------------------------

    async def data_version(self, model: str, commit: str) -> DataVersion:
        """The DVC outs recorded at ``commit`` (and rows from a stats file when present)."""

        async def load(sha: str) -> DataVersion:
            outputs: list[DataOutput] = []
            all_listed = bool(self._override(model, "data"))
            for path in await self._candidates(model, sha, "data"):
                raw = await self._read(sha, path)
                if raw is None:
                    continue
                outputs.extend(parse_outs(parse_document(raw, sha, path), model, sha, path))
                if not all_listed:
                    break
            stats = await self._first(model, sha, "stats")
            rows = parse_rows(stats[1]) if stats else None
            return DataVersion(commit=sha, outputs=tuple(outputs), rows=rows)

        return await self._cached("data", model, commit, load)

    async def params(self, model: str, commit: str) -> dict[str, Any]:
        """params.yaml (or the configured file) flattened to dotted keys; {} when absent."""

        async def load(sha: str) -> dict[str, Any]:
            found = await self._first(model, sha, "params")
            if found is None:
                return {}
            return flatten(_mapping(found[1], sha, found[0], "parameters"))

        return dict(await self._cached("params", model, commit, load))

    async def metrics(self, model: str, commit: str) -> dict[str, float]:
        """The metrics file flattened to dotted keys, finite numbers only; {} when absent."""

        async def load(sha: str) -> dict[str, float]:
            found = await self._first(model, sha, "metrics")
            if found is None:
                return {}
            return numeric_only(flatten(_mapping(found[1], sha, found[0], "metrics")))

        return dict(await self._cached("metrics", model, commit, load))

    async def schema(self, model: str, commit: str) -> DataSchema | None:
        """The schema file's fields at ``commit``; None when the model has no schema file."""

        async def load(sha: str) -> DataSchema | None:
            found = await self._first(model, sha, "schema_file")
            return parse_schema(found[1], sha, found[0]) if found else None

        return await self._cached("schema", model, commit, load)

    # -- life cycle -----------------------------------------------------------------------

    async def _known_models(self, sha: str) -> list[str]:
        names = list(getattr(self.ctx.config, "models", None) or {})
        raw = await self._read(sha, "artifacts.yaml")
        if raw is not None:
            doc = _mapping(
                parse_document(raw, sha, "artifacts.yaml"), sha, "artifacts.yaml", "artifacts"
            )
            names += [n for n in doc if n not in names]
        return names

    async def check(self) -> str:
        """Read params and metrics of the known models at HEAD; raise on an unreadable file."""
        try:
            sha = await self._resolve("HEAD")
        except NotFound:
            raise Unreachable(
                f"the repository {self.repo} has no commits yet",
                backend="dvc",
                hint="commit params.yaml, metrics and .dvc files",
            ) from None
        models = (await self._known_models(sha))[:CHECK_MODELS]
        if not models:
            return "DVC files readable at HEAD (no models known: no artifacts.yaml, no [models])"
        found = 0
        for model in models:
            if await self.params(model, sha) or await self.metrics(model, sha):
                found += 1
        return f"DVC files readable at HEAD ({found} of {len(models)} models' params/metrics found)"

    async def aclose(self) -> None:
        await self._cat.aclose()


_MISS = object()
