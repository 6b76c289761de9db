"""The embedded ``ci`` backend: a folder of CI run records, one JSON file per run, with optional
JUnit XML reports (the schema is in docs/runs-folder.md)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from console.domain import CIConclusion, CIJob, CIRun, CIStatus
from console.plugins import BackendContext
from console.plugins.options import RunsFolderConfig
from console.ports import BackendError, InvalidResponse, NotFound, Unreachable

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1 << 20
MAX_JUNIT_BYTES = 50 << 20
MIN_PREFIX = 7
RUNS_KEPT = 64  # CIRuns built for look-ups, most recently used (~2.5 KB each)
RECHECK_SECONDS = 1.0  # callers within this long of the last look share its index
SETTLED_NS = 2_000_000_000  # a folder mtime older than this can not hide a same-tick change
DONE = CIStatus.COMPLETED
JUNIT_JOB = "tests"
_OLDEST = datetime.min.replace(tzinfo=UTC)
_NEWEST = datetime.max.replace(tzinfo=UTC)
_MARKS = {"oldest": _OLDEST, "newest": _NEWEST}
INDEX_VERSION = 1


def _mark(at: datetime) -> str:
    return "oldest" if at == _OLDEST else "newest" if at == _NEWEST else at.isoformat()


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class _Record(BaseModel):
    """Fields shared by runs and jobs; unknown keys are ignored (tolerant reader)."""

    model_config = ConfigDict(extra="ignore")

    status: CIStatus
    conclusion: CIConclusion | None
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    junit: str | None = None

    @field_validator("started_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _aware(value)


class JobRecord(_Record):
    """One job of a run; only ``name`` is required."""

    name: str
    status: CIStatus = CIStatus.COMPLETED
    conclusion: CIConclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: str = ""


class RunRecord(_Record):
    """One run file: every field without a default is required (null allowed where typed so)."""

    id: str | int
    pipeline: str
    commit: str
    actor: str
    jobs: list[JobRecord] = []

    @field_validator("commit")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be a commit sha (at least 7 hex digits)")
        return value


def junit_counts(path: Path) -> tuple[int, int]:
    """(tests, failed) of a JUnit XML report; failed counts failures and errors.

    Refuses DTDs and entity declarations (no billion-laughs, no external entities).
    """
    if path.stat().st_size > MAX_JUNIT_BYTES:
        raise ValueError(f"larger than {MAX_JUNIT_BYTES >> 20} MB")
    raw = path.read_bytes()
    head = raw.upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise ValueError("declares a DTD or entities, which are refused")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ValueError(f"is not well-formed XML: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"root element is <{root.tag}>, not <testsuites> or <testsuite>")
    cases = list(root.iter("testcase"))
    if cases:
        failed = sum(
            1 for c in cases if c.find("failure") is not None or c.find("error") is not None
        )
        return len(cases), failed
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite")) or [root]

    def attr(name: str) -> int:
        try:
            return sum(int(s.get(name, "0")) for s in suites)
        except ValueError:
            raise ValueError(f"attribute {name} is not a number") from None

    return attr("tests"), attr("failures") + attr("errors")


@dataclass(slots=True)
class _Entry:
    """One file as last indexed: only what look-ups and ordering need (a parsed record is
    ~7 KB of objects; an entry ~0.2 KB). The CIRun is built from the file when asked for.
    ``commit`` is "" when the file is bad."""

    name: str
    mtime_ns: int
    size: int
    commit: str = ""
    done: bool = True
    key: tuple[datetime, int, str] = (_OLDEST, -1, "")
    problem: str = ""
    junit_problems: tuple[str, ...] = ()  # not a list each: 10,000 entries are kept
    built: CIRun | None = None  # kept for records with JUnit reports (counts read with them)


def _order_key(
    status: CIStatus, started: datetime | None, finished: datetime | None, run_id: str
) -> tuple[datetime, int, str]:
    """Newest first when sorted in reverse: by start (unstarted runs newest), then id."""
    unstarted = _OLDEST if status is CIStatus.COMPLETED else _NEWEST
    return started or finished or unstarted, int(run_id) if run_id.isdigit() else -1, run_id


def _to_job(
    src: JobRecord | RunRecord | CIJob, counts: tuple[int | None, int | None] | None = None
) -> CIJob:
    """A job of the domain from a checked record (a whole run stands for its JUnit job)."""
    if counts is None:
        counts = (src.tests_total, src.tests_failed) if isinstance(src, CIJob) else (None, None)
    return CIJob(
        name=src.name if isinstance(src, JobRecord | CIJob) else JUNIT_JOB,
        status=src.status,
        conclusion=src.conclusion,
        started_at=src.started_at,
        finished_at=src.finished_at,
        url=src.url,
        tests_total=counts[0],
        tests_failed=counts[1],
    )


def _to_run(record: RunRecord, jobs: list[CIJob]) -> CIRun:
    return CIRun(
        id=str(record.id),
        pipeline=record.pipeline,
        commit=record.commit,
        status=record.status,
        conclusion=record.conclusion,
        started_at=record.started_at,
        finished_at=record.finished_at,
        url=record.url,
        actor=record.actor,
        jobs=tuple(jobs),
    )


class RunsFolderCI:
    """CIProvider over a folder of JSON run records, indexed once and re-indexed on change."""

    name = "runs-folder"

    def __init__(self, config: RunsFolderConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.folder = (Path(ctx.workspace) / config.path).resolve()
        self._entries: dict[str, _Entry] = {}
        self._stamp: tuple[int, int] | None = None  # (folder mtime_ns, file count)
        self._live: set[str] = set()  # files of runs not completed yet
        self._valid = 0
        self._checked_at: float | None = None
        self._exists = False
        # Runs by commit and the sorted commits, swapped as one tuple by the indexing thread.
        self._view: tuple[dict[str, list[_Entry]], list[str]] = ({}, [])
        # The index of the last session: a restart parses only the files changed since.
        self._saved = Path(ctx.state_dir) / "ci-index.json"
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[bool] | None = None
        self._runs: OrderedDict[tuple[str, int, int], CIRun] = OrderedDict()  # built, LRU

    # -- indexing -------------------------------------------------------------------------

    def _read(self, path: Path, size: int) -> RunRecord | str:
        """The checked record in ``path``, or what is wrong with it (one sentence)."""
        rel = path.name
        if size > MAX_RECORD_BYTES:
            return f"{rel}: larger than 1 MB; is it a run record?"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return f"{rel}: unreadable: {exc}"
        try:  # parsed and checked in one pass (pydantic-core)
            return RunRecord.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                try:  # say where, the way json does
                    json.loads(raw)
                except UnicodeDecodeError as bad:
                    return f"{rel}: unreadable: {bad}"
                except json.JSONDecodeError as bad:
                    return f"{rel}: not valid JSON: line {bad.lineno}: {bad.msg}"
            return f"{rel}: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg'].lower()}"
                for e in exc.errors()[:3]
            )

    def _parse(self, path: Path, mtime_ns: int, size: int) -> _Entry:
        record = self._read(path, size)
        if isinstance(record, str):
            return _Entry(path.name, mtime_ns, size, problem=record)
        entry = _Entry(
            path.name,
            mtime_ns,
            size,
            commit=record.commit,
            done=record.status is DONE,
            key=_order_key(record.status, record.started_at, record.finished_at, str(record.id)),
        )
        if record.junit or any(j.junit for j in record.jobs):
            problems: list[str] = []
            entry.built = self._with_junit(record, problems, path.name)
            entry.junit_problems = tuple(problems)
        return entry

    def _with_junit(self, record: RunRecord, problems: list[str], rel: str) -> CIRun:
        """The run with its jobs' test counts read from the JUnit files it names."""
        jobs = [self._job(j, j.junit, problems, rel) for j in record.jobs]
        if record.junit:
            named = next((i for i, j in enumerate(jobs) if j.name == JUNIT_JOB), None)
            base = jobs[named] if named is not None else _to_job(record)
            job = self._job(base, record.junit, problems, rel)
            if named is None:
                jobs.append(job)
            else:
                jobs[named] = job
        return _to_run(record, jobs)

    def _build(self, entry: _Entry) -> CIRun | None:
        """The CIRun of an indexed file, read again (None: it changed into something else; the
        next indexing says what)."""
        if entry.built is not None:
            return entry.built
        cached = self._runs.get((entry.name, entry.mtime_ns, entry.size))
        if cached is not None:
            self._runs.move_to_end((entry.name, entry.mtime_ns, entry.size))
            return cached
        record = self._read(self.folder / entry.name, entry.size)
        if isinstance(record, str) or record.commit != entry.commit:
            return None
        run = _to_run(record, [_to_job(j) for j in record.jobs])
        self._runs[(entry.name, entry.mtime_ns, entry.size)] = run
        while len(self._runs) > RUNS_KEPT:
            self._runs.popitem(last=False)
        return run

    def _job(
        self, src: JobRecord | CIJob, junit: str | None, problems: list[str], rel: str
    ) -> CIJob:
        """The job, with its test counts from the JUnit file ``junit`` when it names one."""
        if not junit:
            return _to_job(src)
        counts: tuple[int | None, int | None] | None = None
        target = (self.folder / junit).resolve()
        try:
            if not target.is_relative_to(self.folder):
                raise ValueError("is outside the runs folder")
            counts = junit_counts(target)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{rel}: JUnit file {junit}: {reason}")
        return _to_job(src, counts)

    def _scan(self) -> tuple[tuple[int, int], dict[str, os.stat_result]] | None:
        """(folder stamp, stat of every run file); no listing while the folder is unchanged."""
        try:
            mtime_ns = self.folder.stat().st_mtime_ns
            settled = time.time_ns() - mtime_ns > SETTLED_NS  # no same-tick change can hide
            if self._stamp is not None and mtime_ns == self._stamp[0] and settled:
                return self._stamp, {}
            with os.scandir(self.folder) as it:
                names = [
                    e.name
                    for e in it
                    if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file()
                ]
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise Unreachable(
                f"CI runs path {self.folder} is a file, not a folder",
                backend=self.name,
                hint="point backends.ci.path at a folder of run JSON files",
            ) from None
        except PermissionError:
            raise Unreachable(f"no permission to read {self.folder}", backend=self.name) from None
        stamp = (mtime_ns, len(names))
        if stamp == self._stamp:
            return stamp, {}
        stats: dict[str, os.stat_result] = {}
        folder = str(self.folder)
        for name in names:  # os.stat of a str: no Path object per file (10,000 of them)
            try:
                stats[name] = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
        return stamp, stats

    def _refresh(self) -> bool:
        """Bring the index up to date; returns False when the folder does not exist."""
        scanned = self._scan()
        if scanned is None:
            self._stamp, self._entries, self._live = None, {}, set()
            self._rebuild()
            return False
        stamp, stats = scanned
        changed = False
        if stamp != self._stamp:
            known = self._entries if self._stamp is not None else self._load_saved()
            entries: dict[str, _Entry] = {}
            parsed = 0
            for name, st in stats.items():
                old = known.get(name)
                if old is not None and (old.mtime_ns, old.size) == (st.st_mtime_ns, st.st_size):
                    entries[name] = old
                else:
                    entries[name] = self._parse(self.folder / name, st.st_mtime_ns, st.st_size)
                    self._log(entries[name])
                    parsed += 1
            self._entries, self._stamp, changed = entries, stamp, True
            if parsed or len(known) != len(entries):
                self._save()
            self._live = {n for n, e in entries.items() if e.commit and not e.done}
        # Runs still queued or in progress are often rewritten in place: re-check just those.
        for name in list(self._live):
            entry = self._entries[name]
            try:
                st = (self.folder / name).stat()
            except FileNotFoundError:
                continue
            if (st.st_mtime_ns, st.st_size) != (entry.mtime_ns, entry.size):
                entry = self._entries[name] = self._parse(
                    self.folder / name, st.st_mtime_ns, st.st_size
                )
                self._log(entry)
                changed = True
                if not entry.commit or entry.done:
                    self._live.discard(name)
        if changed:
            self._rebuild()
        return True

    def _load_saved(self) -> dict[str, _Entry]:
        """The entries saved by the last session for this folder ({} when none or unusable).
        Only where to look is kept, never what a run says: runs are read from their files."""
        try:
            doc = json.loads(self._saved.read_bytes())
            if doc.get("version") != INDEX_VERSION or doc.get("folder") != str(self.folder):
                return {}
            out: dict[str, _Entry] = {}
            rows = doc.pop("runs")
            rows.reverse()
            while rows:  # each row freed as its entry is made: 10,000 rows are ~5 MB at once
                name, mtime_ns, size, commit, done, when, number, run_id, problem = rows.pop()
                at = _MARKS.get(when) or datetime.fromisoformat(when)
                out[name] = _Entry(
                    str(name),
                    int(mtime_ns),
                    int(size),
                    commit=str(commit),
                    done=bool(done),
                    key=(at, int(number), str(run_id)),
                    problem=str(problem),
                )
            return out
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def _save(self) -> None:
        """Keep the index for the next start (entries with JUnit counts are parsed again);
        failing to write it (read-only checkout, full disk) only costs the next start time."""
        runs = [
            [
                e.name,
                e.mtime_ns,
                e.size,
                e.commit,
                e.done,
                _mark(e.key[0]),
                e.key[1],
                e.key[2],
                e.problem,
            ]
            for e in self._entries.values()
            if e.built is None and not e.junit_problems
        ]
        doc = {"version": INDEX_VERSION, "folder": str(self.folder), "runs": runs}
        tmp = self._saved.with_name(f"{self._saved.name}.{os.getpid()}.tmp")
        try:
            self._saved.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self._saved)
        except OSError as exc:
            log.info("could not save the CI index %s: %s", self._saved, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _log(self, entry: _Entry) -> None:
        for problem in [entry.problem, *entry.junit_problems]:
            if problem:
                log.warning("runs folder %s: skipped %s", self.folder, problem)

    def _rebuild(self) -> None:
        by_commit: dict[str, list[_Entry]] = {}
        for entry in self._entries.values():
            if entry.commit:
                by_commit.setdefault(entry.commit, []).append(entry)
        self._view = (by_commit, sorted(by_commit))
        self._valid = sum(1 for e in self._entries.values() if e.commit)

    @property
    def problems(self) -> list[str]:
        """Every bad record or JUnit file found by the last indexing, one sentence each."""
        out: list[str] = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            out += [p for p in [entry.problem, *entry.junit_problems] if p]
        return out

    async def _index(self) -> bool:
        limit = max(self.ctx.timeout * 4, 20.0)
        async with self._lock:
            recent = self._checked_at is not None and (
                time.monotonic() - self._checked_at < RECHECK_SECONDS
            )
            if not recent or self._pending is not None:
                # A refresh that outlived a caller's timeout is awaited, never run twice at once.
                if self._pending is None:
                    self._pending = asyncio.ensure_future(asyncio.to_thread(self._refresh))
                try:
                    self._exists = await asyncio.wait_for(asyncio.shield(self._pending), limit)
                except TimeoutError:
                    raise Unreachable(
                        f"indexing {self.folder} took longer than {limit:.0f}s (still running)",
                        backend=self.name,
                        hint="move old run files to an archive folder",
                    ) from None
                finally:
                    if self._pending.done():
                        self._pending = None
                self._checked_at = time.monotonic()
        if self._exists and self._entries and not self._valid:
            raise InvalidResponse(
                f"none of the {len(self._entries)} run files in {self.folder} is valid; "
                f"first problem: {self.problems[0]}",
                backend=self.name,
                hint="see docs/runs-folder.md for the record schema",
            )
        return self._exists

    # -- the port -------------------------------------------------------------------------

    async def runs_for(self, commit: str) -> Sequence[CIRun]:
        """Runs recorded for ``commit`` (full sha or unique prefix of >= 7), newest first."""
        [runs] = (await self.runs_for_many([commit])).values()
        if isinstance(runs, BackendError):
            raise runs
        return runs

    async def runs_for_many(
        self, commits: Sequence[str]
    ) -> dict[str, Sequence[CIRun] | BackendError]:
        """``runs_for`` of every commit: one look at the folder, one thread for the files."""
        out: dict[str, Sequence[CIRun] | BackendError] = {}
        entries: dict[str, list[_Entry]] = {}
        for commit in dict.fromkeys(commits):
            query = commit.strip().lower()
            if len(query) < MIN_PREFIX:
                out[commit] = NotFound(
                    f"commit {commit!r} is too short to look up CI runs",
                    backend=self.name,
                    hint=f"use at least {MIN_PREFIX} hex digits of the sha",
                )
            else:
                entries[commit] = []
        if not entries or not await self._index():
            return {**out, **{c: [] for c in entries}}
        for commit in entries:
            try:
                entries[commit] = self._entries_for(commit.strip().lower())
            except BackendError as exc:
                out[commit] = exc
        found = {c: e for c, e in entries.items() if c not in out}
        known = self._runs
        if all(
            e.built is not None or (e.name, e.mtime_ns, e.size) in known
            for es in found.values()
            for e in es
        ):
            out.update(self._build_all(found))
        else:  # file reads: off the event loop, in one thread hop
            out.update(await asyncio.to_thread(self._build_all, found))
        return out

    def _build_all(self, found: dict[str, list[_Entry]]) -> dict[str, Sequence[CIRun]]:
        return {c: [r for r in map(self._build, es) if r is not None] for c, es in found.items()}

    def _entries_for(self, query: str) -> list[_Entry]:
        """The indexed runs of commit ``query`` (a sha or a prefix), newest first."""
        by_commit, commits = self._view
        found = list(by_commit.get(query, ()))
        # Records that store an abbreviated sha of the queried commit.
        for n in range(MIN_PREFIX, len(query)):
            found += by_commit.get(query[:n], ())
        # Records of commits the query abbreviates: must be a unique commit.
        lo = bisect.bisect_left(commits, query)
        longer: list[str] = []
        for i in range(lo, len(commits)):  # islice would step over the first ``lo`` one by one
            sha = commits[i]
            if not sha.startswith(query):
                break
            if sha != query:
                longer.append(sha)
        if len(longer) > 1:
            raise NotFound(
                f"commit prefix {query} is ambiguous in {self.folder}: "
                f"{', '.join(s[:12] for s in longer[:3])}",
                backend=self.name,
                hint="use the full sha",
            )
        for sha in longer:
            found += by_commit[sha]
        found.sort(key=lambda e: e.key, reverse=True)
        return found

    async def check(self) -> str:
        """Index the folder; say how many runs it holds and how many records were skipped."""
        if not await self._index():
            raise Unreachable(
                f"CI runs folder {self.folder} does not exist",
                backend=self.name,
                hint=f"create it (mkdir -p {self.folder}) and write one JSON file per run "
                "(docs/runs-folder.md), or set backends.ci.path",
            )
        text = f"{self._valid} CI runs for {len(self._view[0])} commits in {self.folder}"
        problems = self.problems
        if problems:
            text += f"; {len(problems)} problem(s), first: {problems[0]}"
        return text

    async def aclose(self) -> None:
        return None
