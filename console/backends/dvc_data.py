"""The embedded ``data`` backend: DVC files, params, metrics, stats and schema files read from
git at a commit through one long-lived ``git cat-file --batch`` (no ``dvc``, no checkout)."""

from __future__ import annotations

import json
import math
import posixpath
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from console.backends.lru import LRU
from console.domain import DataOutput, DataSchema, DataVersion, SchemaField
from console.git.cmd import CatFile, Entry, Trees, run_git
from console.git.yamlread import safe_load
from console.plugins import BackendContext
from console.plugins.options import DvcConfig
from console.ports import BackendError, InvalidResponse, NotFound, Unreachable

_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_HASH_NAMES = frozenset({"md5", "md5-dos2unix", "etag", "checksum", "version_id"})
_ROW_KEYS = ("rows", "n_rows", "num_rows", "row_count", "nrows")
CACHE_SIZE = 1024  # results kept: a screen's versions, not a whole status run
DOCS_KEPT = 512  # parsed documents kept across batches (within one, each blob is parsed once)
CHECK_MODELS = 100


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


class BadFile(InvalidResponse):
    """A file at a commit that can not be read as what it should be; ``what`` says why."""

    def __init__(self, commit: str, path: str, what: str) -> None:
        super().__init__(
            f"{path} at commit {commit[:10]} {what}",
            backend="dvc",
            hint=f"fix the file in a new commit; inspect it with `git show {commit[:10]}:{path}`",
        )
        self.what = what


def _bad(commit: str, path: str, what: str) -> BadFile:
    return BadFile(commit, path, what)


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


_FACTS = {  # what each port method reads: the config's candidate lists, in order
    "data": ("data", "stats"),
    "params": ("params",),
    "metrics": ("metrics",),
    "schema": ("schema_file",),
}


class _Want:
    """One fact of one (model, commit): its candidate paths and what was found so far."""

    __slots__ = ("at", "attr", "dir", "error", "every", "found", "item", "sha", "templates")

    def __init__(
        self, item: tuple[str, str], sha: str, attr: str, templates: list[str], every: bool
    ) -> None:
        self.item = item
        self.sha = sha
        self.attr = attr
        self.templates = templates
        self.every = every  # every present candidate counts (a model's explicit data list)
        self.at = 0  # the candidate looked at next
        self.dir: str | None = None  # the artifact's folder once read ("" when it has none)
        self.found: list[tuple[str, Entry]] = []  # (path, blob) in template order
        self.error: BackendError | None = None  # reading the artifact's folder failed

    @property
    def model(self) -> str:
        return self.item[0]


class DvcData:
    """DataVersions read from DVC files, params and metrics files in the workspace's git repo.

    Reads many (model, commit) pairs in a few ``cat-file`` rounds (console.git.cmd
    ``Trees``): each path resolved to a blob id, each blob read once, each document parsed once
    per blob id; the ``{dir}`` templates read ``artifacts.yaml`` only when the candidates
    before them are missing."""

    name = "dvc"

    def __init__(self, config: DvcConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.repo = Path(ctx.workspace)
        self._cat = CatFile(self.repo, timeout=ctx.timeout)
        self._trees = Trees(self._cat)
        self._results: LRU = LRU(CACHE_SIZE)  # (kind, model, sha) -> parsed result
        self._docs: LRU = LRU(DOCS_KEPT)  # (blob id, extension) -> parsed document or problem
        self._dirs: LRU = LRU(64)  # (blob id, prefix) of an artifacts.yaml -> {name: folder}

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
        return out.decode().strip()

    def _override(self, model: str, attr: str) -> Any:
        models = getattr(self.ctx.config, "models", None) or {}
        cfg = models.get(model)
        return getattr(cfg, attr, None) if cfg is not None else None

    def _templates(self, model: str, attr: str) -> list[str]:
        override = self._override(model, attr)
        if override:
            return [override] if isinstance(override, str) else list(override)
        return list(getattr(self.config, attr))

    # -- batches ----------------------------------------------------------------------------

    async def _many(
        self, kind: str, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Any]:
        """(model, commit) -> the ``kind`` fact, or the BackendError reading it raised."""
        out: dict[tuple[str, str], Any] = {}
        shas: dict[tuple[str, str], str] = {}
        for item in dict.fromkeys(items):
            try:
                shas[item] = await self._resolve(item[1])
            except BackendError as exc:
                out[item] = exc
        todo = []
        for item, sha in shas.items():
            hit = self._results.lookup((kind, item[0], sha), _MISS)
            if hit is _MISS:
                todo.append(item)
            else:
                out[item] = hit
        if todo:
            out.update(await self._load(kind, todo, shas))
        return out

    async def _load(
        self, kind: str, items: list[tuple[str, str]], shas: dict[tuple[str, str], str]
    ) -> dict[tuple[str, str], Any]:
        wants = [
            _Want(
                item,
                shas[item],
                attr,
                self._templates(item[0], attr),
                every=attr == "data" and bool(self._override(item[0], "data")),
            )
            for item in items
            for attr in _FACTS[kind]
        ]
        missing = await self._find(wants)
        contents = await self._contents(wants)
        out: dict[tuple[str, str], Any] = {}
        by_item: dict[tuple[str, str], list[_Want]] = {}
        for w in wants:
            by_item.setdefault(w.item, []).append(w)
        for item, mine in by_item.items():
            sha = shas[item]
            if sha in missing:
                out[item] = NotFound(
                    f"commit {item[1]} is not in the repository {self.repo}",
                    backend="dvc",
                    hint="fetch it (git fetch) or check the version's commit",
                )
                continue
            try:
                value = self._build(kind, item[0], sha, mine, contents)
            except BackendError as exc:
                out[item] = exc
                continue
            self._results.store((kind, item[0], sha), value)
            out[item] = value
        return out

    async def _find(self, wants: list[_Want]) -> set[str]:
        """Walk the candidate files of all ``wants`` together, one candidate at a time: the
        first present one settles a want (every present one, for a model's explicit ``data``
        list); a ``{dir}`` template reads the artifact's folder first. Returns the commits
        that do not exist."""
        missing: set[str] = set()
        active = [w for w in wants if w.templates]
        while active:
            dirless = [w for w in active if w.dir is None and "{dir}" in w.templates[w.at]]
            if dirless:
                await self._read_dirs(dirless)
            asked: dict[_Want, str] = {}
            for w in active:
                template = w.templates[w.at]
                path = _fill(template, w)
                if ("{dir}" not in template or w.dir) and "\n" not in path and "\0" not in path:
                    asked[w] = path
            found, gone = await self._trees.resolve([(w.sha, p) for w, p in asked.items()])
            missing |= gone
            still = []
            for w in active:
                took = asked.get(w)
                entry = found.get((w.sha, took)) if took is not None else None
                if entry is not None and took is not None and entry.is_blob:
                    if all(p != took for p, _ in w.found):
                        w.found.append((took, entry))
                    if not w.every:
                        continue
                w.at += 1
                if w.sha not in gone and w.at < len(w.templates) and w.error is None:
                    still.append(w)
            active = still
        return missing

    async def _read_dirs(self, wants: list[_Want]) -> None:
        """The artifact folders of ``wants`` from ``artifacts.yaml`` (``dir:name`` aware)."""
        index = {w: _index_path(w.model) for w in wants}
        found, _ = await self._trees.resolve([(w.sha, path) for w, path in index.items()])
        need: dict[str, Entry] = {}
        for w, path in index.items():
            entry = found.get((w.sha, path))
            if (
                entry is not None
                and entry.is_blob
                and (entry.oid, _prefix(w.model)) not in self._dirs
            ):
                need[entry.oid] = entry
        texts = await self._blob_data(list(need.values()))
        for w, path in index.items():
            w.dir = ""
            entry = found.get((w.sha, path))
            if entry is None or not entry.is_blob:
                continue
            try:
                folders = self._folders(entry.oid, texts.get(entry.oid), w, path)
            except BackendError as exc:
                w.error = exc
                continue
            folder = folders.get(w.model.rpartition(":")[2], "")
            w.dir = "" if folder in (".", "") else posixpath.normpath(folder)

    def _folders(self, oid: str, raw: bytes | None, want: _Want, path: str) -> dict[str, str]:
        """name -> the folder of its artifact path, from the artifacts.yaml in blob ``oid``."""
        prefix = _prefix(want.model)
        folders: dict[str, str] | None = self._dirs.lookup((oid, prefix))
        if folders is None:
            hit = self._parsed((oid, _ext(path)), raw, want.sha, path)
            if hit[0] == "bad":
                raise _bad(want.sha, path, hit[1])
            doc = _mapping(hit[1], want.sha, path, "artifacts")
            folders = {
                art: posixpath.dirname(posixpath.join(prefix, spec["path"]))
                for art, spec in doc.items()
                if isinstance(spec, dict) and isinstance(spec.get("path"), str)
            }
            self._dirs.store((oid, prefix), folders)
        return folders

    async def _contents(self, wants: list[_Want]) -> dict[tuple[str, str], Any]:
        """(blob id, extension) -> the document the wants found: parsed already, or its raw
        content to parse (each blob read once)."""
        docs: dict[tuple[str, str], Any] = {}
        need: dict[str, Entry] = {}
        for w in wants:
            for path, entry in w.found:
                key = (entry.oid, _ext(path))
                if key not in docs:
                    docs[key] = self._docs.lookup(key, _MISS)
                    if docs[key] is _MISS:
                        need[entry.oid] = entry
        data = await self._blob_data(list(need.values()))
        for key, hit in docs.items():
            if hit is _MISS:
                docs[key] = data.get(key[0])
        return docs

    async def _blob_data(self, entries: list[Entry]) -> dict[str, bytes]:
        out = {e.oid: e.data for e in entries if e.data is not None}
        rest = [e.oid for e in entries if e.data is None]
        if rest:
            out.update(await self._trees.blobs(rest))
        return out

    def _document(
        self, docs: dict[tuple[str, str], Any], entry: Entry, commit: str, path: str
    ) -> Any:
        """The parsed document of ``entry`` (found at ``path``): parsed once per batch."""
        key = (entry.oid, _ext(path))
        hit = docs.get(key)
        if not isinstance(hit, tuple):
            hit = docs[key] = self._parsed(key, hit, commit, path)
        if hit[0] == "bad":
            raise _bad(commit, path, hit[1])
        return hit[1]

    def _parsed(self, key: tuple[str, str], raw: bytes | None, commit: str, path: str) -> Any:
        """("ok", document) or ("bad", why) for the blob ``key``, kept across batches."""
        hit = self._docs.lookup(key, _MISS)
        if hit is _MISS:
            if raw is None:
                raise Unreachable(f"git gave no content for {path} at {commit[:10]}", backend="dvc")
            try:
                hit = ("ok", parse_document(raw, commit, path))
            except BadFile as exc:
                hit = ("bad", exc.what)
            self._docs.store(key, hit)
        return hit

    def _build(
        self, kind: str, model: str, sha: str, wants: list[_Want], docs: dict[tuple[str, str], Any]
    ) -> Any:
        for w in wants:
            if w.error is not None:
                raise w.error

        def doc(w: _Want) -> tuple[str, Any] | None:
            if not w.found:
                return None
            path, entry = w.found[0]
            return path, self._document(docs, entry, sha, path)

        if kind == "data":
            files, stats = wants
            outputs: list[DataOutput] = []
            for path, entry in files.found:
                parsed = self._document(docs, entry, sha, path)
                outputs.extend(parse_outs(parsed, model, sha, path))
            found = doc(stats)
            rows = parse_rows(found[1]) if found else None
            return DataVersion(commit=sha, outputs=tuple(outputs), rows=rows)
        found = doc(wants[0])
        if kind == "schema":
            return parse_schema(found[1], sha, found[0]) if found else None
        if found is None:
            return {}
        if kind == "params":
            return flatten(_mapping(found[1], sha, found[0], "parameters"))
        return numeric_only(flatten(_mapping(found[1], sha, found[0], "metrics")))

    async def _one(self, kind: str, model: str, commit: str) -> Any:
        [value] = (await self._many(kind, [(model, commit)])).values()
        if isinstance(value, BaseException):
            raise value
        return value

    # -- the port -------------------------------------------------------------------------

    async def data_version(self, model: str, commit: str) -> DataVersion:
        """The DVC outs recorded at ``commit`` (and rows from a stats file when present)."""
        return cast(DataVersion, await self._one("data", model, commit))

    async def params(self, model: str, commit: str) -> dict[str, Any]:
        """params.yaml (or the configured file) flattened to dotted keys; {} when absent."""
        return dict(await self._one("params", model, commit))

    async def metrics(self, model: str, commit: str) -> dict[str, float]:
        """The metrics file flattened to dotted keys, finite numbers only; {} when absent."""
        return dict(await self._one("metrics", model, commit))

    async def schema(self, model: str, commit: str) -> DataSchema | None:
        """The schema file's fields at ``commit``; None when the model has no schema file."""
        return cast(DataSchema | None, await self._one("schema", model, commit))

    async def data_versions_many(
        self, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DataVersion | BackendError]:
        return await self._many("data", items)

    async def params_many(
        self, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any] | BackendError]:
        found = await self._many("params", items)
        return {k: v if isinstance(v, BackendError) else dict(v) for k, v in found.items()}

    async def metrics_many(
        self, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, float] | BackendError]:
        found = await self._many("metrics", items)
        return {k: v if isinstance(v, BackendError) else dict(v) for k, v in found.items()}

    # -- life cycle -----------------------------------------------------------------------

    async def _known_models(self, sha: str) -> list[str]:
        names = list(getattr(self.ctx.config, "models", None) or {})
        raw = await self._cat.read(sha, "artifacts.yaml")
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


def _fill(template: str, want: _Want) -> str:
    path = template.replace("{model}", want.model).replace("{dir}", want.dir or "")
    return posixpath.normpath(path).lstrip("/")


def _ext(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _prefix(model: str) -> str:
    return model.rpartition(":")[0]


def _index_path(model: str) -> str:
    """Where the ``artifacts.yaml`` that names ``model`` lives (``dir:name``: in ``dir``)."""
    prefix = _prefix(model)
    return posixpath.join(prefix, "artifacts.yaml") if prefix else "artifacts.yaml"


_MISS = object()
