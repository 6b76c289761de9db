"""Everything from a backend is untrusted text: every control character (C0 with TAB and LF,
DEL, C1) and every direction override, put into every field the embedded backends read, never
comes out of a port (docs/reliability.md, "Hostile text").

One table row per field; each row builds a real git repository (objects written byte for byte
with ``git hash-object --literally``, as a crafted push brings them), a runs folder or a
metrics endpoint with all 74 characters in that field, reads it through the backend the
console uses, and checks every string of every object the port returns. ``\\n`` is kept only
in a tag message (a multi-line field); everywhere else line breaks become spaces.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from console.backends.scrape_metrics import ScrapeMetrics
from console.config import load_config
from console.plugins import BackendContext
from console.plugins.options import ScrapeConfig
from console.services.workspace import Workspace, open_workspace
from tests.hostile import (
    CLEAR,
    CONTROLS,
    OSC52,
    git,
    hostile_commits,
    hostile_tags,
    leaks,
    name,
    terminal_unsafe,
)
from tests.release.conftest import make_workspace

Reader = Callable[[Path], Awaitable[list[tuple[str, Any]]]]
"""Builds the field's hostile data under a folder and reads it back: [(char, what came out)]."""


def _workspace(root: Path) -> tuple[Workspace, dict[str, str]]:
    made = make_workspace(root)
    return open_workspace(load_config(None, root)), made.commits


async def _tags(root: Path, field: str) -> list[tuple[str, Any]]:
    """A version per char, its tag holding the char in ``field``; versions and history."""
    ws, commits = _workspace(root)
    names = [f"m@v2.{i}.0" for i in range(len(CONTROLS))]
    by_tag = hostile_tags(root, [commits["c4"]] * len(CONTROLS), CONTROLS, names=names,
                          field=field)  # fmt: skip
    async with ws:
        registry = ws.get("registry")
        versions = {v.version: v for v in await registry.versions("m")}
        history = [e for e in await registry.history("m") if e.version and e.version in versions]
        events = {e.version: e for e in history}
    return [(c, (versions.get(t[2:]), events.get(t[2:]))) for t, c in by_tag.items()]


async def _commits(root: Path, field: str) -> list[tuple[str, Any]]:
    """A commit per char with the char in ``field``; read one by one (git cat-file) and as a
    range (git log), as the lineage does."""
    ws, commits = _workspace(root)
    shas = hostile_commits(root, commits["c4"], CONTROLS, field=field)
    shas += hostile_commits(root, commits["c4"], CONTROLS, field=field, root=True)
    async with ws:  # the ranges first: a commit read once is cached
        code = ws.get("code")
        ranged = {c.sha: c for sha in shas for c in await code.commits_between(commits["c4"], sha)}
        whole = [(await code.commits_between(None, sha))[0] for sha in shas]  # no base: all
    async with open_workspace(load_config(None, root)) as again:
        one = [await again.get("code").commit(sha) for sha in shas]
    return [(c, (first, ranged.get(sha), all_)) for c, sha, first, all_
            in zip(CONTROLS * 2, shas, one, whole, strict=True)]  # fmt: skip


async def _diffstat(root: Path) -> list[tuple[str, Any]]:
    """A commit per char adding a file whose name holds it (NUL and / can not be in a name)."""
    ws, commits = _workspace(root)
    out = []
    async with ws:
        code = ws.get("code")
        for c in CONTROLS:
            if c == "\0":
                continue
            git(root, "checkout", "-q", "--detach", commits["c4"])
            (root / f"f{c}x.txt").write_text("one\n")
            git(root, "add", "--", f"f{c}x.txt")
            git(root, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-qm", "f")
            stat = await code.diffstat(commits["c4"], git(root, "rev-parse", "HEAD"))
            assert (stat.files, stat.insertions, stat.deletions) == (1, 1, 0), name(c)
            out.append((c, stat))
    return out


async def _dvc_paths(root: Path) -> list[tuple[str, Any]]:
    """A commit per char whose ``data/m.dvc`` names an output holding it (in YAML escapes)."""
    ws, _ = _workspace(root)
    out = []
    async with ws:
        data = ws.get("data")
        for c in CONTROLS:
            outs = [{"md5": "0" * 32, "size": 10, "path": f"train{c}.csv", "hash": "md5"}]
            (root / "data").mkdir(exist_ok=True)
            (root / "data" / "m.dvc").write_text(json.dumps({"outs": outs}))  # JSON is YAML
            git(root, "add", "--", "data/m.dvc")
            git(root, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-qm", "d")
            version = await data.data_version("m", git(root, "rev-parse", "HEAD"))
            assert len(version.outputs) == 1, name(c)
            out.append((c, version))
    return out


async def _ci_runs(root: Path) -> list[tuple[str, Any]]:
    """A run record per char, the char in every string field of the run and its job."""
    ws, commits = _workspace(root)
    runs = root / ".ci-runs"
    for f in runs.glob("*.json"):
        f.unlink()
    for i, c in enumerate(CONTROLS):
        record = {"id": f"r{i}-{c}", "pipeline": f"train{c}", "commit": commits["c1"],
                  "actor": f"bot{c}", "status": "completed", "conclusion": "success",
                  "started_at": f"2025-11-13T10:{i // 60:02d}:{i % 60:02d}Z", "finished_at": None,
                  "url": f"https://ci.example/{c}", "jobs": [{"name": f"test{c}", "url": c}]}  # fmt: skip
        (runs / f"run-{i}.json").write_text(json.dumps(record))
    async with ws:
        found = await ws.get("ci").runs_for(commits["c1"])
    assert len(found) == len(CONTROLS)
    by_index = {int(r.id[1:].split("-")[0]): r for r in found}
    return [(c, by_index[i]) for i, c in enumerate(CONTROLS)]


async def _metric_labels(root: Path) -> list[tuple[str, Any]]:
    """One served version per char (the ``version`` label of a real exporter's counters)."""
    registry = CollectorRegistry()
    requests = Counter("model_requests", "", ["model", "stage", "version", "outcome"],
                       registry=registry)  # fmt: skip
    for i, c in enumerate(CONTROLS):
        requests.labels(f"m{i}", "production", f"v1{c}x", "ok").inc(5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    ctx = BackendContext(workspace=root, state_dir=root / ".cd4ml", config=None, timeout=5.0)
    metrics = ScrapeMetrics(ScrapeConfig(url=url), ctx)
    try:
        out = [(c, await metrics.health(f"m{i}", "production")) for i, c in enumerate(CONTROLS)]
        out.append(("check", await metrics.check()))
    finally:
        await metrics.aclose()
        server.shutdown()
        server.server_close()
        thread.join(5)
    for c, health in out[:-1]:
        assert health.version and health.version.startswith("v1"), name(c)
    return out


FIELDS: dict[str, Callable[[Path], Awaitable[list[tuple[str, Any]]]]] = {
    "tagger name": lambda root: _tags(root, "tagger"),
    "tagger email": lambda root: _tags(root, "email"),
    "tag message": lambda root: _tags(root, "message"),
    "commit author": lambda root: _commits(root, "author"),
    "author email": lambda root: _commits(root, "email"),
    "commit subject": lambda root: _commits(root, "subject"),
    "commit body": lambda root: _commits(root, "body"),
    "diffstat file name": _diffstat,
    "DVC path": _dvc_paths,
    "CI run fields": _ci_runs,
    "metric label values": _metric_labels,
}


def _cases() -> Iterator[str]:
    yield from FIELDS


@pytest.mark.parametrize("field", list(_cases()))
async def test_no_control_character_from_any_field_comes_out_of_a_port(
    field: str, tmp_path: Path
) -> None:
    read = FIELDS[field]
    results = await read(tmp_path / "ws")
    chars = {c for c, _ in results if c != "check"}
    assert len(chars) >= len(CONTROLS) - 1  # the file-name row can not hold NUL
    found = {f"{name(c) if c != 'check' else c}: {leak}" for c, got in results
             for leak in leaks(got)}  # fmt: skip
    assert not found, f"{field}: {sorted(found)[:10]} ({len(found)} leaks)"


def test_the_table_covers_every_character_and_field() -> None:
    """The figure docs/reliability.md quotes: 74 characters x 11 git/data/CI/metric fields
    (the MLflow fields are in plugins/mlflow/tests/test_mlflow_hostile_text.py)."""
    assert len(CONTROLS) == 74 and len(set(CONTROLS)) == 74
    assert len(FIELDS) == 11


# -- what the CLI prints ---------------------------------------------------------------------


MARKUP = '[link="https://evil.example"]click[/link][bold red]x[/][/]'


def _hostile_workspace(root: Path) -> str:
    """The release workspace plus a version per character whose commit, tag, staging
    assignment, CI run and audit records all carry it (and OSC 52 / clear-screen sequences);
    returns the version that staging points at."""
    made = make_workspace(root)
    chars = [*CONTROLS, CLEAR + OSC52, MARKUP]  # v2.74.0: whole sequences; v2.75.0: markup
    shas = hostile_commits(root, made.commits["c4"], chars)
    hostile_tags(root, shas, chars, names=[f"m@v2.{i}.0" for i in range(len(chars))])
    hostile_tags(root, [shas[74]], [CLEAR], names=["m#staging#2"], field="tagger")
    record = {"id": f"7{CLEAR}", "pipeline": f"train{OSC52}", "commit": shas[74],
              "actor": f"bot{CLEAR}", "status": "completed", "conclusion": "success",
              "started_at": "2025-11-13T10:00:00Z", "finished_at": "2025-11-13T10:05:00Z",
              "url": f"https://ci.example/{OSC52}", "jobs": [{"name": f"test{CLEAR}"}]}  # fmt: skip
    (root / ".ci-runs" / "run-hostile.json").write_text(json.dumps(record))
    return "v2.74.0"


async def _hostile_audit(root: Path, version: str) -> None:
    """Records with raw escapes, as an older console or another tool could have written them:
    the log keeps them (their hashes cover them); every view shows them escaped."""
    from datetime import UTC, datetime

    from console.domain import AuditEvent

    at = datetime(2025, 11, 13, 11, 0, tzinfo=UTC)
    async with open_workspace(load_config(None, root)) as ws:
        store = ws.get("audit")
        for request_id, action in (("", "promote"), ("req-hostile", "request")):
            await store.append(AuditEvent(
                seq=0, at=at, actor=f"Eve{CLEAR}", action=action, model="m", version=version,
                stage="staging", before="v1.0.0", after=version, reason=f"ship it{OSC52}",
                result="executed" if action == "promote" else "pending", request_id=request_id,
                details={"expected": "v1.0.0", "kind": "promote"},
            ))  # fmt: skip


COMMANDS = (
    ("versions", "m"),
    ("versions", "m", "--json"),
    ("compare", "m", "v2.74.0", "v2.10.0"),
    ("report", "m", "v2.74.0"),
    ("status",),
    ("status", "--json"),
    ("audit",),
    ("audit", "--json"),
    ("requests", "--all"),
)


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from console.cli.group import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_output_holds_no_control_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))
    root = tmp_path / "ws"
    version = _hostile_workspace(root)
    import asyncio

    asyncio.run(_hostile_audit(root, version))
    outputs = {" ".join(args): _cli("-w", str(root), *args) for args in COMMANDS}
    unsafe = {
        cmd: found
        for cmd, result in outputs.items()
        if (found := terminal_unsafe(result.stdout + result.stderr))
    }
    assert not unsafe, unsafe
    compared = outputs["compare m v2.74.0 v2.10.0"].stdout
    assert "Eve[2J[H]52;c;ZWNobyBwd25lZA==Mallory" in compared  # stripped, still readable
    assert "Eve\\x1b[2J\\x1b[H" in outputs["audit"].stdout  # the record, escaped
    assert "Eve\\x1b[2J" in outputs["report m v2.74.0"].stdout
    assert outputs["versions m"].exit_code == 0, outputs["versions m"].stderr
    assert f"Tag{MARKUP}Ger" in outputs["versions m"].stdout.replace("\n", "")  # not markup
    assert "\x1b]8;" not in outputs["versions m"].stdout  # no hyperlink was made of it


# -- what the TUI draws ----------------------------------------------------------------------


def _drawn(svg: str) -> str:
    """The text of a screenshot (what a terminal would show), tags and entities removed."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def test_tui_shows_hostile_text_stripped_or_escaped_never_raw_nor_as_markup(
    tmp_path: Path,
) -> None:
    """The model screen of a version whose commit, tag, stage and CI run carry escape
    sequences and Rich markup, its four panels, the help, the palette and the audit log: no
    screen holds a control character; the audit records show theirs escaped (``\\x1b``); the
    markup is shown as the text it is."""
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.audit import AuditScreen
    from console.tui.screens.model import ModelScreen

    from .tui_rig import settle, tour_model_screen, until

    root = tmp_path / "ws"
    version = _hostile_workspace(root)
    await _hostile_audit(root, version)
    launch = Launch(label="ws", model="m", version="v2.75.0")
    app = ConsoleApp(load_config=lambda: load_config(None, root), launch=launch, refresh_seconds=0)
    screens: dict[str, str] = {}
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ModelScreen), "the model screen", 20)
        await settle(pilot)
        await tour_model_screen(pilot, app, screens)
        await pilot.press("escape", "A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit log", 10)
        await settle(pilot)
        screens["audit"] = app.export_screenshot()
        app.notify(f"from a backend: {MARKUP} {CLEAR}")
        await until(pilot, lambda: app.screen.query("Toast"), "the notification", 5)
        from textual.widgets._toast import Toast

        toasts = [t.render() for t in app.screen.query(Toast)]
        screens["notification"] = " ".join(str(t) for t in toasts)
    raw = {k: terminal_unsafe(v) for k, v in screens.items() if terminal_unsafe(v)}
    assert not raw, raw
    drawn = {k: _drawn(v) for k, v in screens.items()}
    assert "Eve\\x1b[2J\\x1b[H" in drawn["audit"], drawn["audit"]  # escaped, as recorded
    assert "[bold red]x" in drawn["model tab 1"], drawn["model tab 1"]  # markup shown as text
    assert f"{MARKUP} \\x1b[2J\\x1b[H" in screens["notification"], screens["notification"]
    assert not [span for t in toasts for span in t.spans if "link" in str(span.style)]
